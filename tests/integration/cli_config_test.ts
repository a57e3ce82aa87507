import { deepStrictEqual, ok } from "node:assert/strict";
import { join } from "node:path";
import { DENO_DIR } from "../e2e/harness.ts";
import { bangerArgv, runCommand } from "./_banger.ts";

/** Whether process `pid` still runs (and is not a zombie). */
async function alive(pid: number): Promise<boolean> {
  const ps = await runCommand(["ps", "-o", "stat=", "-p", String(pid)]);
  return ps.code === 0 && !ps.stdout.trim().startsWith("Z");
}

Deno.test("a config.toml broken while the daemon runs refuses commands, but daemon stop still stops it", async () => {
  const root = await Deno.makeTempDir();
  // Its own HOME, and Deno's package cache from the outer one (the
  // namespace has no network to fetch packages with).
  const env = { BANGER_ROOT: root, HOME: join(root, "home"), DENO_DIR };
  // The helper the CLI starts as root makes banger's bridge: a network
  // namespace of its own keeps it off the host. The daemon and helper stay
  // in it after unshare returns; sockets are reached by path from anywhere.
  const inNetns = (args: string[]) =>
    runCommand(["unshare", "--net", "--", ...bangerArgv(args)], env);
  try {
    const first = await inNetns(["vm", "list", "--json"]);
    deepStrictEqual(first.code, 0, first.stderr);
    const pid = Number(
      await Deno.readTextFile(join(root, "run/banger/daemon.pid")),
    );
    ok(await alive(pid), "the daemon did not start");

    await Deno.mkdir(join(root, "etc/banger"), { recursive: true });
    await Deno.writeTextFile(
      join(root, "etc/banger/config.toml"),
      "bogus_key = 1\n",
    );
    const refused = await inNetns(["vm", "list"]);
    deepStrictEqual(refused.code, 1);
    ok(
      refused.stderr.includes('Invalid "bogus_key"') &&
        refused.stderr.includes("unknown key"),
      `the error does not name the key: ${refused.stderr}`,
    );

    const stop = await inNetns(["daemon", "stop"]);
    deepStrictEqual(stop.code, 0, stop.stderr);
    ok(stop.stderr.includes("daemon stopping"), stop.stderr);
    const deadline = Date.now() + 10_000;
    while ((await alive(pid)) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
    }
    ok(!(await alive(pid)), "the daemon still runs after daemon stop");
  } finally {
    await runCommand(["pkill", "-KILL", "-f", root]);
    await Deno.remove(root, { recursive: true });
  }
});
