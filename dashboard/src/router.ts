// Hash routes, so the API server only has to serve index.html: #/clusters, #/clusters/new, #/clusters/<id>,
// #/operations, #/audit.
import { useEffect, useState } from 'react';

export type Route =
  | { page: 'clusters' }
  | { page: 'new-cluster' }
  | { page: 'cluster'; id: string }
  | { page: 'operations' }
  | { page: 'audit' };

export function parseRoute(hash: string): Route {
  const parts = hash.replace(/^#\/?/, '').split('/').filter(Boolean);
  if (parts[0] === 'clusters' && parts[1] === 'new') return { page: 'new-cluster' };
  if (parts[0] === 'clusters' && parts[1]) return { page: 'cluster', id: decodeURIComponent(parts[1]) };
  if (parts[0] === 'operations') return { page: 'operations' };
  if (parts[0] === 'audit') return { page: 'audit' };
  return { page: 'clusters' };
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(window.location.hash));
  useEffect(() => {
    const on = () => setRoute(parseRoute(window.location.hash));
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  return route;
}

export function go(hash: string): void {
  window.location.hash = hash;
}
