// Regenerates crates/channels/assets/phoenix.min.mjs, the minified ES module of the official
// `phoenix` client that the store serves as /js/phoenix.mjs: esbuild minifies the npm package's
// priv/static/phoenix.mjs (the version pinned in tests/js/package.json) without lowering its
// syntax, and the license line is kept on top.
//
//   cd tests/js && npm ci && node tools/minify_phoenix.mjs [--sourcemap]
//
// --sourcemap also writes phoenix.min.mjs.map beside it (not committed, not served) to map a
// minified stack trace back to the client's sources.
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { transform } from "esbuild";

const here = path.dirname(fileURLToPath(import.meta.url));
/** The installed npm package `phoenix` (tests/js/node_modules). */
const packageDir = path.resolve(here, "../node_modules/phoenix");

/** Where the minified client is vendored. */
export const vendoredPath = path.resolve(here, "../../../crates/channels/assets/phoenix.min.mjs");

/** The unminified client of the installed npm package, and its version. */
export async function sourceClient() {
  const { version } = JSON.parse(await readFile(path.join(packageDir, "package.json"), "utf8"));
  const file = path.join(packageDir, "priv/static/phoenix.mjs");
  return { version, file, code: await readFile(file, "utf8") };
}

/** The vendored file's content (and, with `sourcemap`, its source map) built from the npm package. */
export async function minifiedPhoenix({ sourcemap = false } = {}) {
  const { version, code } = await sourceClient();
  const result = await transform(code, {
    loader: "js",
    format: "esm",
    minify: true,
    legalComments: "none",
    sourcemap: sourcemap ? "external" : false,
    sourcefile: "phoenix.mjs",
  });
  const header =
    `// phoenix ${version}, the official Phoenix JavaScript client (MIT License, Copyright (c) 2014 Chris McCord),\n` +
    `// the npm package's priv/static/phoenix.mjs minified by tests/js/tools/minify_phoenix.mjs (esbuild).\n`;
  return { code: header + result.code, map: result.map };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const sourcemap = process.argv.includes("--sourcemap");
  const { code, map } = await minifiedPhoenix({ sourcemap });
  await writeFile(vendoredPath, code);
  if (sourcemap) await writeFile(`${vendoredPath}.map`, map);
  console.log(`wrote ${vendoredPath} (${code.length} bytes)${sourcemap ? " and its source map" : ""}`);
}
