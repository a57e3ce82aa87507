/**
 * `deno task bench [--runs N] [--out file.json]`
 *
 * Speed and memory of banger, each reported as a ratio against a baseline
 * measured in the same run on the same machine. The image is built first in
 * the host's namespace (a download); every measurement that boots guests
 * runs in a network namespace made for it (tests/bench/inner.ts).
 *
 * @module
 */
import { join } from "node:path";
import {
  BANGER_FLAGS,
  DENO_DIR,
  E2E_CACHE_DIR,
  exec,
  MAIN_TS,
} from "../e2e/harness.ts";

const INNER = new URL("./inner.ts", import.meta.url).pathname;
const cacheDir = E2E_CACHE_DIR;
const work = await Deno.makeTempDir({ prefix: "banger-bench-" });
const buildRoot = join(work, "build");
const env = {
  BANGER_ROOT: buildRoot,
  HOME: join(buildRoot, "home"),
  BANGER_CACHE_DIR: cacheDir,
  DENO_DIR,
  NO_COLOR: "1",
};
const build = await exec(Deno.execPath(), [
  ...BANGER_FLAGS,
  MAIN_TS,
  "image",
  "build",
], { env });
await exec(Deno.execPath(), [...BANGER_FLAGS, MAIN_TS, "daemon", "stop"], {
  env,
});
if (build.code !== 0) {
  console.error(`bench: cannot build the image:\n${build.stderr}`);
  Deno.exit(1);
}
const child = new Deno.Command("unshare", {
  args: [
    "--net",
    "--",
    Deno.execPath(),
    ...BANGER_FLAGS,
    INNER,
    work,
    cacheDir,
    ...Deno.args,
  ],
  env: { DENO_DIR },
  stdin: "null",
  stdout: "inherit",
  stderr: "inherit",
}).spawn();
const status = await child.status;
await exec("pkill", ["-KILL", "-f", work], {});
await Deno.remove(work, { recursive: true }).catch(() => {});
Deno.exit(status.code);
