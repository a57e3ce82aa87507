/**
 * A root helper running in a network namespace made for one test: the
 * test talks to it over its unix socket (filesystem sockets cross network
 * namespaces) and inspects the namespace with `nsenter`. Stopping it ends
 * the helper, and with it the namespace and everything in it.
 *
 * @module
 */
import { join } from "node:path";
import { z } from "zod";
import { call } from "../../src/rpc/client.ts";
import { run } from "../../src/util/exec.ts";

const MAIN_TS = new URL("../../main.ts", import.meta.url).pathname;
const FLAGS = [
  "run",
  "--unstable-worker-options",
  "--allow-read",
  "--allow-write",
  "--allow-run",
  "--allow-net",
  "--allow-env",
  "--allow-ffi",
  "--allow-sys",
];

/** A helper in its own network namespace. */
export interface NetnsHelper {
  root: string;
  socket: string;
  pid: number;
  /** Calls a helper method; the result is returned unchecked. */
  call(method: string, params: unknown): Promise<unknown>;
  /** Runs a program inside the helper's network namespace. */
  inNs(program: string, args: string[]): Promise<string>;
  /** `ip -j link` and `nft -j list ruleset` and ip_forward, for comparison. */
  snapshot(): Promise<HostSnapshot>;
  stop(): Promise<void>;
}

/** What the refusal test compares before and after. */
export interface HostSnapshot {
  links: unknown;
  ruleset: unknown;
  forwarding: string;
}

/** Starts `banger helper` (owner `ownerUid`) inside `unshare --net`. */
export async function startHelperInNetns(
  config = "",
  ownerUid = 0,
): Promise<NetnsHelper> {
  const root = await Deno.makeTempDir({ prefix: "banger-helper-test-" });
  await Deno.mkdir(join(root, "etc/banger"), { recursive: true });
  await Deno.writeTextFile(join(root, "etc/banger/config.toml"), config);
  const socket = join(root, "run/banger-root/helper.sock");
  const pidFile = join(root, "run/banger-root/helper.pid");
  const child = new Deno.Command("unshare", {
    args: [
      "--net",
      "--",
      Deno.execPath(),
      ...FLAGS,
      MAIN_TS,
      "helper",
      "--owner-uid",
      String(ownerUid),
    ],
    env: {
      BANGER_ROOT: root,
      HOME: join(root, "home"),
      // Deno's cache follows HOME; the namespace has no network to refill it.
      DENO_DIR: Deno.env.get("DENO_DIR") ??
        join(Deno.env.get("HOME") ?? "/root", ".cache/deno"),
    },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const stderr = child.stderr.pipeThrough(new TextDecoderStream());
  const logLines: string[] = [];
  void (async () => {
    for await (const chunk of stderr) logLines.push(chunk);
  })();

  const deadline = Date.now() + 20_000;
  let pid = 0;
  while (Date.now() < deadline) {
    pid = Number(await Deno.readTextFile(pidFile).catch(() => "0"));
    const up = pid > 0 &&
      await call(socket, "ping", {}, z.unknown()).then(() => true, () => false);
    if (up) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  if (!(pid > 0)) {
    try {
      child.kill("SIGKILL");
    } catch {
      // Exited already.
    }
    throw new Error(`helper did not start:\n${logLines.join("")}`);
  }

  const inNs = async (program: string, args: string[]) =>
    (await run("nsenter", [`--net=/proc/${pid}/ns/net`, program, ...args]))
      .stdout;
  return {
    root,
    socket,
    pid,
    call: (method, params) => call(socket, method, params, z.unknown()),
    inNs,
    snapshot: async () => ({
      links: JSON.parse(await inNs("ip", ["-j", "link"])),
      ruleset: JSON.parse(await inNs("nft", ["-j", "list", "ruleset"])),
      forwarding: (await inNs("sysctl", ["-n", "net.ipv4.ip_forward"]))
        .trim(),
    }),
    stop: async () => {
      await call(socket, "shutdown", {}, z.unknown()).catch(() => {});
      const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
      await child.status;
      clearTimeout(timer);
      await Deno.remove(root, { recursive: true }).catch(() => {});
    },
  };
}
