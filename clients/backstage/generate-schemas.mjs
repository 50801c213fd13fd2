// JSON Schemas of the types each Backstage route answers, generated from the plugin's own
// declarations (through responses.ts, which names them): node generate-schemas.mjs <output directory>.
// Fields the API adds beside the plugin's (exact decimals, currency, grain) are allowed; a missing,
// mistyped or null field the plugin's types do not allow is not.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createGenerator } from 'ts-json-schema-generator';

const TYPES = [
  'LastCompleteBillingDateBody',
  'GroupsBody',
  'GroupProjectsBody',
  'CostBody',
  'ProductInsightsBody',
  'AlertsBody',
];
const output = process.argv[2] ?? 'schemas';
mkdirSync(output, { recursive: true });
const generator = createGenerator({
  path: 'responses.ts',
  tsconfig: 'tsconfig.json',
  skipTypeCheck: true,
  additionalProperties: true,
  expose: 'none',
  jsDoc: 'none',
});
for (const type of TYPES) {
  writeFileSync(join(output, `${type}.json`), JSON.stringify(generator.createSchema(type), null, 2));
}
console.log(`${TYPES.length} schemas in ${output}`);
