/**
 * The helper checks who is calling on every connection (SO_PEERCRED): root
 * and the owner uid only, whatever the socket's file mode allows.
 */
import { join } from "node:path";
import { assertEquals } from "./_assert.ts";
import { startHelperInNetns } from "./_helper_netns.ts";

const OWNER = 4242;
const STRANGER = 65534;

/** Sends one `ping` as `uid` with a deno that has no access to banger. */
async function pingAs(uid: number, socket: string): Promise<unknown> {
  const denoDir = await Deno.makeTempDir({ prefix: "banger-peercred-" });
  await Deno.chown(denoDir, uid, uid);
  const script = `
    const conn = await Deno.connect({ transport: "unix", path: ${
    JSON.stringify(socket)
  } });
    await conn.write(new TextEncoder().encode(JSON.stringify({
      v: 1, id: "x", method: "ping", params: {},
    }) + "\\n"));
    let text = "";
    const buf = new Uint8Array(4096);
    for (let n = await conn.read(buf); n !== null; n = await conn.read(buf)) {
      text += new TextDecoder().decode(buf.subarray(0, n));
      if (text.includes("\\n")) break;
    }
    console.log(text.trim());
  `;
  try {
    const out = await new Deno.Command("setpriv", {
      args: [
        `--reuid=${uid}`,
        `--regid=${uid}`,
        "--clear-groups",
        "--",
        Deno.execPath(),
        "eval",
        script,
      ],
      env: { DENO_DIR: denoDir, HOME: denoDir, NO_COLOR: "1" },
      cwd: denoDir,
    }).output();
    const text = new TextDecoder().decode(out.stdout).trim();
    if (!out.success) {
      throw new Error(new TextDecoder().decode(out.stderr));
    }
    return JSON.parse(text);
  } finally {
    await Deno.remove(denoDir, { recursive: true });
  }
}

Deno.test({
  name:
    "helper refuses callers other than root and the owner, even through an open socket",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const helper = await startHelperInNetns("", OWNER);
    try {
      // Open every door the file system has, so only SO_PEERCRED decides.
      await Deno.chmod(helper.root, 0o711);
      await Deno.chmod(join(helper.root, "run"), 0o711);
      await Deno.chmod(helper.socket, 0o666);

      const stranger = await pingAs(STRANGER, helper.socket) as {
        kind: string;
        error?: { code: string };
      };
      assertEquals(
        [stranger.kind, stranger.error?.code],
        ["error", "unauthorized"],
      );

      const owner = await pingAs(OWNER, helper.socket) as {
        kind: string;
        result?: { peerUid: number };
      };
      assertEquals([owner.kind, owner.result?.peerUid], ["result", OWNER]);
    } finally {
      await helper.stop();
    }
  },
});
