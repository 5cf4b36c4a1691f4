// Writes src/generated/{points,rewards,tiers,webhooks}.ts from proto/openapi/*.json with
// openapi-typescript; with --check, writes nothing and fails if a file differs (stale types).
import { readFile, writeFile, mkdir } from "node:fs/promises";
import { fileURLToPath } from "node:url";

import openapiTS, { astToString, COMMENT_HEADER } from "openapi-typescript";

const SERVICES = ["points", "rewards", "tiers", "webhooks"];
const documents = new URL("../../../proto/openapi/", import.meta.url);
const generated = new URL("../src/generated/", import.meta.url);
const check = process.argv.includes("--check");

const stale = [];
await mkdir(generated, { recursive: true });
for (const name of SERVICES) {
  const document = JSON.parse(await readFile(new URL(`${name}.json`, documents), "utf8"));
  const text = COMMENT_HEADER + astToString(await openapiTS(document, {
    // A field with a default may be left out of a request.
    defaultNonNullable: false,
  }));
  const target = new URL(`${name}.ts`, generated);
  if (check) {
    const current = await readFile(target, "utf8").catch(() => null);
    if (current !== text) stale.push(fileURLToPath(target));
  } else {
    await writeFile(target, text);
    console.log(`wrote ${fileURLToPath(target)}`);
  }
}
if (stale.length) {
  console.error(
    `stale generated client types (run \`npm run generate\` or \`make openapi\`): ${stale.join(", ")}`,
  );
  process.exit(1);
}
