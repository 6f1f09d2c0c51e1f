import { useState } from 'react';
import { asProblem, api, storeToken, type ApiProblem } from '../api/client';
import { ProblemBanner } from '../components';

/** Asks for an API token and checks it against the API before keeping it (in this browser's local storage). */
export function TokenEntry({ onToken }: { onToken: (token: string) => void }) {
  const [token, setToken] = useState('');
  const [problem, setProblem] = useState<ApiProblem | null>(null);
  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    try {
      await api('GET', '/v1/clusters?page_size=1', undefined, token.trim());
      storeToken(token.trim());
      onToken(token.trim());
    } catch (err) {
      setProblem(asProblem(err));
    }
  };
  return (
    <form className="card token" onSubmit={submit}>
      <h2>Sign in with an API token</h2>
      <p className="muted">An admin of your organization creates tokens (POST /v1/tokens); the secret is shown once.</p>
      <input
        name="token"
        type="password"
        placeholder="pol_..."
        value={token}
        onChange={(e) => setToken(e.target.value)}
        autoFocus
      />
      <button type="submit" disabled={!token.trim()}>
        Sign in
      </button>
      <ProblemBanner problem={problem} />
    </form>
  );
}
