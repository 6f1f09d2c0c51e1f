import { useCallback, useEffect, useState } from 'react';
import { asProblem, api, type ApiProblem } from './api/client';

/** A GET that refreshes every `intervalMs` (0: once); `reload` fetches again now. A stale answer (for an
 * earlier path) is dropped. */
export function usePoll<T>(path: string | null, intervalMs = 0) {
  const [state, setState] = useState<{ path: string | null; data: T | null; error: ApiProblem | null }>({
    path: null,
    data: null,
    error: null,
  });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    if (!path) return;
    let live = true;
    const fetchOnce = () => {
      api<T>('GET', path).then(
        (data) => live && setState({ path, data, error: null }),
        (e: unknown) =>
          live &&
          setState((s) => ({
            path,
            data: s.path === path ? s.data : null,
            error: asProblem(e),
          })),
      );
    };
    fetchOnce();
    const t = intervalMs ? window.setInterval(fetchOnce, intervalMs) : undefined;
    return () => {
      live = false;
      if (t !== undefined) window.clearInterval(t);
    };
  }, [path, intervalMs, tick]);
  const reload = useCallback(() => setTick((n) => n + 1), []);
  const current = state.path === path;
  return { data: current ? state.data : null, error: current ? state.error : null, reload };
}

/** A form's write: `run(call)` awaits `call`; on success it clears the problem and calls `onDone`, on failure it
 * keeps the API's problem (its code and violations) for the form to show. */
export function useApiCall(onDone: () => void) {
  const [problem, setProblem] = useState<ApiProblem | null>(null);
  const run = async (call: () => Promise<unknown>) => {
    try {
      await call();
      setProblem(null);
      onDone();
    } catch (err) {
      setProblem(asProblem(err));
    }
  };
  return { problem, run };
}
