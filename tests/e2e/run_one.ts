/**
 * Runs one scenario; started by main.ts inside a fresh network namespace.
 * Arguments: name, BANGER_ROOT, HOME, cache dir, log file.
 *
 * @module
 */
import { exec, Scenario } from "./harness.ts";
import { SCENARIOS } from "./scenarios.ts";

const [name, root, home, cacheDir, logPath] = Deno.args as [
  string,
  string,
  string,
  string,
  string,
];
const logFile = await Deno.open(logPath, { create: true, append: true });
const encoder = new TextEncoder();
const log = (line: string) => {
  logFile.writeSync(encoder.encode(`[${new Date().toISOString()}] ${line}\n`));
};
const scenario = new Scenario(name, root, home, cacheDir, log);

let cleaning: Promise<void> | undefined;
const cleanup = () =>
  cleaning ??= (async () => {
    log("cleanup: deleting VMs and stopping the daemon");
    try {
      const list = await scenario.banger(["vm", "list", "--json"]);
      const names = (JSON.parse(list.stdout || "[]") as { name: string }[]).map(
        (v) => v.name,
      );
      if (names.length) await scenario.banger(["vm", "delete", ...names]);
    } catch (error) {
      log(`cleanup: ${error}`);
    }
    await scenario.banger(["daemon", "stop"]).catch(() => {});
  })();

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(signal, async () => {
    log(`interrupted (${signal})`);
    await cleanup();
    Deno.exit(130);
  });
}

// A fresh namespace has only a down loopback.
await exec("ip", ["link", "set", "lo", "up"], {});
let code = 0;
try {
  await SCENARIOS[name]!.run(scenario);
  log("PASS");
} catch (error) {
  log(`FAIL: ${error instanceof Error ? error.stack ?? error.message : error}`);
  code = 1;
}
await cleanup();
Deno.exit(code);
