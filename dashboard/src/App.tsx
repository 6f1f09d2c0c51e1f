import { useState } from 'react';
import { storeToken, storedToken } from './api/client';
import { AuditPage } from './pages/AuditPage';
import { ClusterPage } from './pages/ClusterPage';
import { ClustersPage } from './pages/ClustersPage';
import { NewClusterPage } from './pages/NewClusterPage';
import { OperationsPage } from './pages/OperationsPage';
import { TokenEntry } from './pages/TokenEntry';
import { useRoute } from './router';

export function App() {
  const [token, setToken] = useState(storedToken());
  const route = useRoute();
  return (
    <div className="app">
      <nav>
        <strong className="brand">Polaris</strong>
        <a href="#/clusters" className={route.page.includes('cluster') ? 'active' : ''}>
          Clusters
        </a>
        <a href="#/operations" className={route.page === 'operations' ? 'active' : ''}>
          Operations
        </a>
        <a href="#/audit" className={route.page === 'audit' ? 'active' : ''}>
          Audit
        </a>
        <span className="spacer" />
        <a href="/docs/">API</a>
        {token && (
          <button
            className="link"
            onClick={() => {
              storeToken(null);
              setToken(null);
            }}
          >
            Sign out
          </button>
        )}
      </nav>
      <main>
        {!token ? (
          <TokenEntry onToken={setToken} />
        ) : route.page === 'new-cluster' ? (
          <NewClusterPage />
        ) : route.page === 'cluster' ? (
          <ClusterPage key={route.id} id={route.id} />
        ) : route.page === 'operations' ? (
          <OperationsPage />
        ) : route.page === 'audit' ? (
          <AuditPage />
        ) : (
          <ClustersPage />
        )}
      </main>
    </div>
  );
}
