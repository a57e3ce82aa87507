/**
 * The helper checks SO_PEERCRED on every connection. The client processes
 * here get CAP_DAC_OVERRIDE so that file modes do not stop them first: the
 * refusal must come from the helper's own credential check.
 */
import { deepStrictEqual, match } from "node:assert/strict";
import { bangerArgv, runCommand, waitForPath } from "./_banger.ts";

const OWNER = 4242;
const STRANGER = 4243;

/**
 * Sends one request line to the helper as `uid` (able to open any file)
 * through socat, and returns the parsed answer.
 */
async function requestAs(
  uid: number,
  socket: string,
  method: string,
  params: unknown = {},
): Promise<
  {
    kind: string;
    result?: { peerUid: number };
    error?: { code: string; message: string; op: string };
  }
> {
  const child = new Deno.Command("setpriv", {
    args: [
      `--reuid=${uid}`,
      `--regid=${uid}`,
      "--clear-groups",
      "--inh-caps=+dac_override",
      "--ambient-caps=+dac_override",
      "socat",
      "-t",
      "5",
      "-",
      `UNIX-CONNECT:${socket}`,
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(
    new TextEncoder().encode(
      JSON.stringify({ v: 1, id: "t", method, params }) + "\n",
    ),
  );
  await writer.close();
  const out = await child.output();
  const text = new TextDecoder().decode(out.stdout).trim();
  if (!text) throw new Error(new TextDecoder().decode(out.stderr));
  return JSON.parse(text.split("\n").pop()!);
}

Deno.test({
  name: "the helper serves root and the owner and refuses any other uid",
  ignore: Deno.uid() !== 0,
  async fn() {
    const root = await Deno.makeTempDir();
    const env = { BANGER_ROOT: root, HOME: root, DENO_DIR: denoDir() };
    // The helper runs in a network namespace of its own: should a check
    // fail open, nothing on the host's network could change.
    const helper = new Deno.Command("unshare", {
      args: [
        "--net",
        "--",
        ...bangerArgv(["helper", "--owner-uid", String(OWNER)]),
      ],
      env,
      stdout: "null",
      stderr: "piped",
    }).spawn();
    try {
      const socket = `${root}/run/banger-root/helper.sock`;
      await waitForPath(socket);
      const asRoot = await requestAs(0, socket, "ping");
      deepStrictEqual(asRoot.result?.peerUid, 0);

      const asOwner = await requestAs(OWNER, socket, "ping");
      deepStrictEqual(asOwner.result?.peerUid, OWNER);

      const asStranger = await requestAs(STRANGER, socket, "ping");
      deepStrictEqual(asStranger.error?.code, "unauthorized");
      match(
        asStranger.error?.message ?? "",
        /Refusing connection from uid 4243/,
      );
      match(asStranger.error?.op ?? "", /^op-[0-9a-f]{8}$/);

      // A refused peer gets nothing done, whatever it asks for.
      const tap = await requestAs(STRANGER, socket, "tap.delete", {
        name: "bgtap9",
      });
      deepStrictEqual(tap.error?.code, "unauthorized");

      // banger's own client, as root, is served through the same socket.
      const cli = await runCommand(
        bangerArgv(["internal", "helper-call", "ping"]),
        env,
      );
      deepStrictEqual(cli.code, 0, cli.stderr);
    } finally {
      helper.kill("SIGKILL");
      await helper.status;
      await helper.stderr.cancel();
      await Deno.remove(root, { recursive: true });
    }
  },
});

function denoDir(): string {
  return Deno.env.get("DENO_DIR") ??
    `${Deno.env.get("HOME") ?? "/root"}/.cache/deno`;
}
