// End-to-end: Debian's Chromium (through playwright-core, no browser download) drives the dashboard the API
// server serves, against the live local stack (./dev/up or ./dev/test). Each run works in an org of its own:
// a platform admin token creates the org, an admin token for it, grants it the (local) targets, and a policy
// bundle. Screenshots of the main pages go to $POLARIS_SCREENSHOTS (default .polaris/screenshots).
//
//   POLARIS_API_URL=http://127.0.0.1:8080 POLARIS_TOKEN_FILE=../.polaris/dev-admin-token node e2e/run.mjs
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..', '..');
const base = (process.env.POLARIS_API_URL ?? 'http://127.0.0.1:8080').replace(/\/$/, '');
const tokenFile = process.env.POLARIS_TOKEN_FILE ?? join(root, '.polaris', 'dev-admin-token');
const shots = process.env.POLARIS_SCREENSHOTS ?? join(root, '.polaris', 'screenshots');
const browserPath = process.env.CHROMIUM ?? '/usr/bin/chromium';
const READY_TIMEOUT = 180_000;

function fail(message) {
  throw new Error(message);
}

async function call(token, method, path, body) {
  let resp;
  try {
    resp = await fetch(base + path, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'x-polaris-channel': 'api' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    fail(`the Polaris API at ${base} is not reachable (${e.cause?.code ?? e}); start the stack with ./dev/up`);
  }
  const json = await resp.json().catch(() => null);
  if (!resp.ok) fail(`${method} ${path}: ${resp.status} ${JSON.stringify(json)}`);
  return json;
}

/** An org of this run's own, with an admin token, the local targets and a policy bundle. */
async function setUp(platformToken, stamp) {
  const org = await call(platformToken, 'POST', '/v1/orgs', { name: `e2e-${stamp}` });
  const token = await call(platformToken, 'POST', '/v1/tokens', { name: 'e2e-admin', role: 'admin', org_id: org.id });
  // Targets are platform infrastructure: the platform admin grants the new org the local ones.
  const targets = await call(platformToken, 'GET', '/v1/targets');
  if (!targets.items?.length) fail('there are no targets; ./dev/up registers the local ones');
  for (const t of targets.items) {
    await call(platformToken, 'POST', `/v1/targets/${t.id}/grants`, { org_id: org.id });
  }
  await call(token.secret, 'PUT', '/v1/policies', {
    brokers: { min: 1, max: 6 },
    topic_name_pattern: '^[a-z][a-z0-9.-]*$',
    min_replication_factor: 2,
    max_partitions_per_topic: 12,
    retention_ms: { finite: true, min: 3600000, max: 2592000000 },
    replication_factor_at_most_brokers: true,
    users: { no_wildcard_topic_acls: true, allowed_topic_prefixes: ['orders.'] },
  });
  return { org, token: token.secret, target: targets.items[0] };
}

async function step(name, fn) {
  const started = Date.now();
  process.stdout.write(`e2e: ${name} ... `);
  const result = await fn();
  console.log(`ok (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  return result;
}

async function main() {
  let platformToken;
  try {
    platformToken = readFileSync(tokenFile, 'utf8').trim();
  } catch {
    fail(`no platform admin token at ${tokenFile}; ./dev/up writes it (or set POLARIS_TOKEN_FILE)`);
  }
  const index = await fetch(`${base}/`).catch(() => null);
  if (!index) fail(`the Polaris API at ${base} is not reachable; start the stack with ./dev/up`);
  if (!(index.headers.get('content-type') ?? '').includes('text/html')) {
    fail(`${base}/ does not serve the dashboard: build it (npm run build in dashboard/) and restart the API`);
  }
  mkdirSync(shots, { recursive: true });
  const stamp = `${Date.now().toString(36)}`;
  const { token, target } = await step('set up an org, its admin token, targets and policy bundle', () =>
    setUp(platformToken, stamp),
  );

  const browser = await chromium.launch({ executablePath: browserPath, headless: true, args: ['--no-sandbox'] });
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const consoleErrors = [];
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
  const shot = (name) => page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
  try {
    await step('sign in with the token', async () => {
      await page.goto(`${base}/`);
      await page.fill('input[name=token]', token);
      await page.click('button[type=submit]');
      await page.waitForSelector('h1:has-text("Clusters")', { timeout: 10_000 });
    });

    const name = `e2e-${stamp}`;
    const clusterId = await step('create a cluster through the form and watch it reach READY', async () => {
      await page.click('a:has-text("Create cluster")');
      await page.fill('input[name=name]', name);
      await page.selectOption('select[name=provider]', target.provider);
      await page.fill('input[name=region]', target.region);
      await page.fill('input[name=brokers]', '3');
      await page.click('button:has-text("Create")');
      await page.waitForURL(/#\/clusters\/[0-9a-f-]{36}$/, { timeout: 10_000 });
      const id = page.url().split('/').pop();
      // The provision may finish before the page's first refresh shows its steps; the scale below is where the
      // live steps are checked.
      await page.waitForSelector('[data-testid=operation] [data-step], h1 [data-status=READY]', { timeout: 30_000 });
      await shot('cluster-provisioning');
      await page.waitForSelector('h1 [data-status=READY]', { timeout: READY_TIMEOUT });
      await page.waitForSelector('[data-testid=brokers] tbody tr', { timeout: 10_000 });
      return id;
    });
    await shot('cluster-ready');

    await step('submit a topic that breaks the policy and see each violation next to its field', async () => {
      await page.fill('[data-testid=create-topic] input[name=name]', 'Bad_Topic');
      await page.fill('[data-testid=create-topic] input[name=partitions]', '50');
      await page.fill('[data-testid=create-topic] input[name=replication_factor]', '1');
      await page.fill('[data-testid=create-topic] input[name=retention_ms]', '1000');
      await page.click('[data-testid=create-topic] button[type=submit]');
      await page.waitForSelector('[data-testid=create-topic] .violation', { timeout: 10_000 });
      for (const [field, policy] of [
        ['name', 'topic_name_pattern'],
        ['partitions', 'max_partitions_per_topic'],
        ['replication_factor', 'min_replication_factor'],
        ['config.retention.ms', 'retention_ms'],
      ]) {
        const n = await page
          .locator(`[data-testid=create-topic] [data-field="${field}"] .violation[data-policy="${policy}"]`)
          .count();
        if (n !== 1) fail(`expected the ${policy} violation next to ${field}, found ${n}`);
      }
      const alert = await page.textContent('[data-testid=create-topic] [role=alert]');
      if (!alert?.includes('POLICY_VIOLATION')) fail(`expected the problem code, got ${alert}`);
    });
    await shot('topic-violations');

    await step("the cluster page charts the managed-cluster dashboard's panels from Prometheus", async () => {
      // This cluster runs status only (no brokers to scrape): every chart is there, empty, and nothing failed.
      await page.waitForSelector('[data-testid=charts]', { timeout: 30_000 });
      const titles = await page.$$eval('[data-testid=charts] [data-chart]', (els) => els.map((e) => e.getAttribute('data-chart')));
      const want = ['Under-replicated partitions', 'Bytes in per broker', 'Bytes out per broker', 'Produce request latency p99', 'Active controllers'];
      if (JSON.stringify(titles) !== JSON.stringify(want)) fail(`charts ${titles.join(', ')}; want ${want.join(', ')}`);
    });

    await step('create a topic that the policy allows', async () => {
      await page.fill('[data-testid=create-topic] input[name=name]', 'orders.events');
      await page.fill('[data-testid=create-topic] input[name=partitions]', '6');
      await page.fill('[data-testid=create-topic] input[name=replication_factor]', '2');
      await page.fill('[data-testid=create-topic] input[name=retention_ms]', '86400000');
      await page.click('[data-testid=create-topic] button[type=submit]');
      await page.waitForSelector('[data-topic="orders.events"] [data-status=READY]', { timeout: READY_TIMEOUT });
    });

    await step('scale to 4 brokers, watch its steps live, and wait for READY', async () => {
      await page.fill('[data-testid=scale] input[name=brokers]', '4');
      await page.click('[data-testid=scale] button[type=submit]');
      // The running operation's steps appear and change as the workers report them.
      await page.waitForSelector('[data-testid=operation] [data-step="rebalance-add-brokers"]', { timeout: 30_000 });
      const first = await page.$$eval('[data-testid=operation] [data-step]', (els) =>
        els.map((e) => `${e.getAttribute('data-step')}=${e.getAttribute('data-state')}`).join(' '));
      await shot('cluster-scaling');
      await page.waitForFunction(
        (before) => {
          const els = [...document.querySelectorAll('[data-testid=operation] [data-step]')];
          const now = els.map((e) => `${e.getAttribute('data-step')}=${e.getAttribute('data-state')}`).join(' ');
          return els.length === 0 || now !== before;
        },
        first,
        { timeout: READY_TIMEOUT },
      );
      await page.waitForFunction(
        () => document.querySelector('[data-testid=brokers-now]')?.textContent === '4' &&
          document.querySelector('h1 [data-status]')?.getAttribute('data-status') === 'READY',
        undefined,
        { timeout: READY_TIMEOUT },
      );
      await page.waitForSelector('[data-event=RebalanceCompleted]', { timeout: 10_000 });
    });

    await step('move the as-of slider back and see the old broker count', async () => {
      const events = await page.$$eval('[data-testid=timeline] [data-event]', (els) => els.map((e) => e.getAttribute('data-event')));
      const ready = events.indexOf('ClusterReady');
      if (ready < 0) fail(`no ClusterReady in the timeline: ${events.join(', ')}`);
      const slider = page.locator('input[name=as_of]');
      await slider.focus();
      await page.keyboard.press('Home');
      for (let i = 0; i < ready; i++) await page.keyboard.press('ArrowRight');
      await page.waitForSelector('[data-testid=as-of-brokers]', { timeout: 10_000 });
      const then = await page.textContent('[data-testid=as-of-brokers]');
      const now = await page.textContent('[data-testid=brokers-now]');
      if (then !== '3' || now !== '4') fail(`as of ClusterReady: brokers ${then} (want 3); now ${now} (want 4)`);
      const status = await page.getAttribute('[data-testid=as-of-state] [data-status]', 'data-status');
      if (status !== 'READY') fail(`as of ClusterReady the status was ${status}`);
    });
    await shot('cluster-as-of');

    await step('the clusters list filters by status and shows badges', async () => {
      await page.goto(`${base}/#/clusters`);
      await page.waitForSelector(`[data-cluster="${name}"] [data-status=READY]`, { timeout: 10_000 });
      await page.selectOption('select[name=status]', 'FAILED');
      await page.waitForSelector(`[data-cluster="${name}"]`, { state: 'detached', timeout: 10_000 });
      await page.selectOption('select[name=status]', 'READY');
      await page.waitForSelector(`[data-cluster="${name}"]`, { timeout: 10_000 });
    });
    await shot('clusters');

    await step('operations list the provision, topic and scale operations', async () => {
      await page.goto(`${base}/#/operations`);
      await page.waitForFunction(
        (cid) => document.querySelectorAll(`[data-testid=operations] a[href="#/clusters/${cid}"]`).length >= 3,
        clusterId,
        { timeout: 10_000 },
      );
    });
    await shot('operations');

    await step('the audit log shows the refused topic, made from the dashboard', async () => {
      await page.goto(`${base}/#/audit`);
      await page.selectOption('select[name=outcome]', 'rejected');
      await page.waitForSelector('[data-testid=audit] tr[data-outcome=rejected]', { timeout: 10_000 });
      const row = await page.textContent('[data-testid=audit] tr[data-outcome=rejected]');
      if (!row?.includes('dashboard') || !row.includes('POLICY_VIOLATION')) fail(`audit row: ${row}`);
      const others = await page.locator('[data-testid=audit] tbody tr:not([data-outcome=rejected])').count();
      if (others !== 0) fail(`the outcome filter let ${others} other rows through`);
    });
    await shot('audit');

    await step('edit a topic (partitions 6 -> 8), then delete it after asking twice', async () => {
      await page.goto(`${base}/#/clusters/${clusterId}`);
      const actions = '[data-topic-actions="orders.events"]';
      await page.click(`${actions} button[name=edit]`);
      await page.fill(`${actions} input[name=partitions]`, '8');
      await page.click(`${actions} button[type=submit]`);
      await page.waitForFunction(
        () => {
          const row = document.querySelector('[data-topic="orders.events"]');
          return row?.children[1]?.textContent === '8' && row.querySelector('[data-status=READY]');
        },
        undefined,
        { timeout: READY_TIMEOUT },
      );
      await page.click(`${actions} button[name=delete]`);
      await page.click(`${actions} button[name=confirm-delete]`);
      await page.waitForFunction(
        () => {
          const row = document.querySelector('[data-topic="orders.events"]');
          return !row || row.querySelector('[data-status=DELETED]');
        },
        undefined,
        { timeout: READY_TIMEOUT },
      );
    });

    await step('the users tab: a rule outside the allowed prefixes is shown at its field, a good user shows its password once', async () => {
      await page.click('button[name=tab-users]');
      const form = '[data-testid=create-user]';
      await page.fill(`${form} input[name=name]`, 'orders-app');
      await page.fill(`${form} input[name=acl-0-name]`, 'payments.*');
      await page.fill(`${form} input[name=acl-0-operations]`, 'Write, Describe');
      await page.click(`${form} button[type=submit]`);
      await page.waitForSelector(`${form} [data-field="acls[0].resource.name"] .violation[data-policy="users.allowed_topic_prefixes"]`, { timeout: 10_000 });
      // A Write on a group: Kafka has no such operation; the API names the field.
      await page.fill(`${form} input[name=acl-0-name]`, 'orders.*');
      await page.click(`${form} button[name=add-rule]`);
      await page.selectOption(`${form} select[name=acl-1-type]`, 'group');
      await page.fill(`${form} input[name=acl-1-name]`, 'orders-app');
      await page.fill(`${form} input[name=acl-1-operations]`, 'Write');
      await page.click(`${form} button[type=submit]`);
      await page.waitForSelector(`${form} [data-field="acls[1].operations"] .violation`, { timeout: 10_000 });
      await page.fill(`${form} input[name=acl-1-operations]`, 'Read');
      await page.click(`${form} button[type=submit]`);
      await page.waitForSelector('[data-testid=credentials-dialog]', { timeout: 10_000 });
      const password = await page.textContent('[data-testid=credentials-password]');
      if (!password || password.length < 32) fail(`expected a password in the dialog, got ${password}`);
      await shot('user-credentials');
      await page.click('button[name=close-credentials]');
      await page.waitForSelector('[data-user="orders-app"] [data-status=READY]', { timeout: READY_TIMEOUT });
      const rules = await page.$$eval('[data-user="orders-app"] [data-acl]', (els) => els.map((e) => e.getAttribute('data-acl')));
      const want = ['allow topic orders.* Write, Describe', 'allow group orders-app Read'];
      if (JSON.stringify(rules) !== JSON.stringify(want)) fail(`ACL table ${rules.join(' | ')}; want ${want.join(' | ')}`);
      const table = await page.textContent('[data-testid=users-table]');
      if (table?.includes(password)) fail('the users table shows the password');
      await page.click('[data-user-actions="orders-app"] button[name=rotate]');
      await page.waitForSelector('[data-testid=credentials-dialog]', { timeout: 10_000 });
      const next = await page.textContent('[data-testid=credentials-password]');
      if (!next || next === password) fail('the rotation showed no new password');
      await page.click('button[name=close-credentials]');
      // The rotation is an operation of its own: the user is READY again at generation 2 when it is done.
      await page.waitForFunction(
        () => {
          const row = document.querySelector('[data-user="orders-app"]');
          return row?.textContent?.includes('generation 2') && row.querySelector('[data-status=READY]');
        },
        undefined,
        { timeout: READY_TIMEOUT },
      );
      await page.click('[data-user-actions="orders-app"] button[name=delete]');
      await page.click('[data-user-actions="orders-app"] button[name=confirm-delete]');
      await page.waitForSelector('[data-user="orders-app"] [data-status=DELETED]', { timeout: READY_TIMEOUT });
      await page.click('button[name=tab-overview]');
    });
    await shot('users');

    await step("drift: a broker-pool edit behind Polaris' back badges the clusters list and is reverted from the drift tab", async () => {
      const cluster = await call(token, 'GET', `/v1/clusters/${clusterId}`);
      const kubeconfig = join(root, '.polaris', 'kube', `${cluster.provider}-${cluster.region}.kubeconfig`);
      const patch = JSON.stringify({ spec: { replicas: cluster.brokers + 1 } });
      execFileSync(join(root, '.polaris', 'cache', 'venv', 'bin', 'kubectl'), [
        '--kubeconfig', kubeconfig, 'patch', 'kafkanodepool', 'brokers', '-n', cluster.namespace, '--type', 'merge', '-p', patch,
      ]);
      await page.goto(`${base}/#/clusters`);
      await page.selectOption('select[name=status]', '');
      await page.waitForSelector(`[data-cluster="${name}"] [data-testid=drift-badge]`, { timeout: 90_000 });
      await page.waitForSelector(`[data-cluster="${name}"] [data-status=DEGRADED]`, { timeout: 10_000 });
      await shot('clusters-drift');
      await page.goto(`${base}/#/clusters/${clusterId}`);
      await page.click('button[name=tab-drift]');
      const row = '[data-testid=drift-table] tr[data-field="spec.replicas"]';
      await page.waitForSelector(`${row} [data-status=open]`, { timeout: 10_000 });
      const text = await page.textContent(row);
      if (!text?.includes('kubectl-patch')) fail(`the drift row does not say who changed it: ${text}`);
      await shot('cluster-drift');
      await page.click(`${row} button[name=revert]`);
      await page.waitForSelector(`${row} [data-status=reverted]`, { timeout: READY_TIMEOUT });
      await page.waitForFunction(
        () => document.querySelector('h1 [data-status]')?.getAttribute('data-status') === 'READY',
        undefined,
        { timeout: 30_000 },
      );
      await page.click('button[name=tab-overview]');
    });

    await step('delete the cluster once its name is typed', async () => {
      const button = '[data-testid=delete-cluster] button[type=submit]';
      if (!(await page.isDisabled(button))) fail('delete is enabled before the name is typed');
      await page.fill('[data-testid=delete-cluster] input[name=confirm]', name);
      await page.click(button);
      await page.waitForFunction(
        () => ['DELETING', 'DELETED'].includes(document.querySelector('h1 [data-status]')?.getAttribute('data-status') ?? ''),
        undefined,
        { timeout: READY_TIMEOUT },
      );
    });
    await shot('cluster-deleted');
    if (consoleErrors.length) fail(`errors in the page: ${consoleErrors.join('; ')}`);
  } catch (e) {
    await shot('failure').catch(() => {});
    throw e;
  } finally {
    await browser.close();
  }
  console.log(`e2e: all passed; screenshots in ${shots}`);
}

main().catch((e) => {
  console.error(`\ne2e FAILED: ${e.message}`);
  process.exit(1);
});
