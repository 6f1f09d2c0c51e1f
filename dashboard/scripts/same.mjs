// Fails when the checked-in generated file differs from a fresh generation (`npm run check:api`).
import { readFileSync, rmSync } from 'node:fs';

const [checkedIn, fresh] = process.argv.slice(2);
const same = readFileSync(checkedIn, 'utf8') === readFileSync(fresh, 'utf8');
rmSync(fresh);
if (!same) {
  console.error(`${checkedIn} is stale: the OpenAPI document changed. Run: npm run gen:api (in dashboard/) and commit.`);
  process.exit(1);
}
console.log(`${checkedIn} matches schemas/openapi.json`);
