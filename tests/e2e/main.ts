/**
 * `deno task e2e [--list] [--scenario a,b] [--core] [--jobs N] [--keep]
 *  [--image-only]`
 *
 * Runs named scenarios against real guests. The golden image is built once
 * in the host's namespace (a download; no bridge, tap or guest traffic).
 * Then each scenario runs in a network namespace of its own (`unshare
 * --net`), with its own BANGER_ROOT and HOME: the daemon, the helper, the
 * VMM and ssh all live in that namespace, which disappears with them.
 *
 * @module
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import {
  BANGER_FLAGS,
  DENO_DIR,
  E2E_CACHE_DIR,
  exec,
  MAIN_TS,
} from "./harness.ts";
import { SCENARIOS } from "./scenarios.ts";

const RUN_ONE = new URL("./run_one.ts", import.meta.url).pathname;

const USAGE =
  "usage: deno task e2e [--list] [--scenario a,b] [--core] [--jobs N] [--keep] [--image-only]";
let parsed;
try {
  parsed = parseArgs({
    args: Deno.args,
    options: {
      list: { type: "boolean" },
      scenario: { type: "string" },
      core: { type: "boolean" },
      jobs: { type: "string" },
      keep: { type: "boolean" },
      "image-only": { type: "boolean" },
    },
    strict: true,
    allowPositionals: false,
  }).values;
} catch (error) {
  console.error(`e2e: ${(error as Error).message}\n${USAGE}`);
  Deno.exit(2);
}

if (parsed.list) {
  for (const [name, s] of Object.entries(SCENARIOS)) {
    console.log(
      `${name.padEnd(24)} ${s.core ? "core " : "     "} ${s.description}`,
    );
  }
  Deno.exit(0);
}

const wanted = parsed.scenario?.split(",").map((s) => s.trim()).filter(
  Boolean,
);
const unknown = (wanted ?? []).filter((n) => !(n in SCENARIOS));
if (unknown.length) {
  console.error(`e2e: unknown scenario(s): ${unknown.join(", ")} (see --list)`);
  Deno.exit(2);
}
const names = wanted ??
  Object.keys(SCENARIOS).filter((n) => !parsed.core || SCENARIOS[n]!.core);
const jobs = Number(parsed.jobs ?? "1");
if (!Number.isInteger(jobs) || jobs < 1) {
  console.error(
    `e2e: invalid --jobs "${parsed.jobs}": must be a whole number from 1`,
  );
  Deno.exit(2);
}
const keep = parsed.keep ?? false;
const cacheDir = E2E_CACHE_DIR;
const workDir = await Deno.makeTempDir({ prefix: "banger-e2e-" });

// Ctrl-C or a TERM (a CI timeout) at any point, the image build included:
// scenarios get SIGINT and clean up after themselves, the build's daemon
// and helper are ended here, and the logs are kept for a look.
const children = new Set<Deno.ChildProcess>();
const buildRoot = join(workDir, "image-build");
let interrupted = false;
let building = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(signal, async () => {
    if (interrupted) return;
    interrupted = true;
    console.log(`\ne2e: ${signal}; cleaning up (logs stay in ${workDir})`);
    for (const child of children) {
      try {
        child.kill("SIGINT");
      } catch {
        // Already gone.
      }
    }
    if (building) {
      await killLeftovers(buildRoot);
      Deno.exit(130);
    }
  });
}

building = true;
await prebuildImage();
building = false;
if (parsed["image-only"]) {
  await Deno.remove(workDir, { recursive: true }).catch(() => {});
  Deno.exit(0);
}

console.log(
  `e2e: ${names.length} scenario(s), ${jobs} at a time, logs in ${workDir}`,
);
const results: { name: string; ok: boolean; seconds: number; log: string }[] =
  [];
const queue = [...names];
await Promise.all(Array.from({ length: jobs }, async () => {
  while (queue.length && !interrupted) {
    const name = queue.shift()!;
    results.push(await runScenario(name));
  }
}));

const passed = results.filter((r) => r.ok).length;
const failed = results.length - passed;
if (!keep && failed === 0 && !interrupted) {
  await Deno.remove(workDir, { recursive: true }).catch(() => {});
}
console.log(`${passed} passed, ${failed} failed`);
Deno.exit(failed > 0 || interrupted ? 1 : 0);

async function runScenario(name: string) {
  const dir = join(workDir, name);
  const root = join(dir, "root");
  const home = join(dir, "home");
  await Deno.mkdir(root, { recursive: true });
  await Deno.mkdir(home, { recursive: true });
  const log = join(dir, "log.txt");
  const start = performance.now();
  const child = new Deno.Command("unshare", {
    args: [
      "--net",
      "--",
      Deno.execPath(),
      ...BANGER_FLAGS,
      RUN_ONE,
      name,
      root,
      home,
      cacheDir,
      log,
    ],
    env: { DENO_DIR },
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  children.add(child);
  const status = await child.status;
  children.delete(child);
  await killLeftovers(root);
  const seconds = (performance.now() - start) / 1000;
  const ok = status.success;
  console.log(
    `${ok ? "PASS" : "FAIL"} ${name.padEnd(24)} ${
      seconds.toFixed(1).padStart(6)
    }s${ok ? "" : `  (log: ${log})`}`,
  );
  if (!ok) {
    const text = await Deno.readTextFile(log).catch(() => "");
    console.log(
      text.split("\n").slice(-25).map((l) => `    | ${l}`).join("\n"),
    );
  }
  return { name, ok, seconds, log };
}

/** Ends anything a scenario left running (its namespace goes with it). */
async function killLeftovers(root: string): Promise<void> {
  for (
    const pidFile of ["run/banger/daemon.pid", "run/banger-root/helper.pid"]
  ) {
    const pid = Number(
      await Deno.readTextFile(join(root, pidFile)).catch(() => ""),
    );
    if (pid > 0) await exec("kill", ["-KILL", String(pid)], {});
  }
  await exec("pkill", ["-KILL", "-f", root], {});
}

async function prebuildImage(): Promise<void> {
  const root = buildRoot;
  await Deno.mkdir(root, { recursive: true });
  const env = {
    BANGER_ROOT: root,
    HOME: join(root, "home"),
    BANGER_CACHE_DIR: cacheDir,
    NO_COLOR: "1",
    DENO_DIR,
  };
  const start = performance.now();
  const build = await exec(Deno.execPath(), [
    ...BANGER_FLAGS,
    MAIN_TS,
    "image",
    "build",
  ], { env });
  await exec(Deno.execPath(), [...BANGER_FLAGS, MAIN_TS, "daemon", "stop"], {
    env,
  });
  await killLeftovers(root);
  if (build.code !== 0) {
    console.error(`e2e: cannot build the image:\n${build.stderr}`);
    Deno.exit(1);
  }
  console.log(
    `e2e: image ready in ${((performance.now() - start) / 1000).toFixed(1)}s`,
  );
}
