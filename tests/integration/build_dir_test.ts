/**
 * An image build directory with a mount inside is never deleted
 * recursively (a killed bootstrap can leave /dev/shm mounted there); once
 * nothing is mounted, it is. Run as root in a private mount namespace.
 */
import assert from "node:assert/strict";

const PROBE = new URL("./build_dir_probe.ts", import.meta.url).pathname;

Deno.test({
  name: "removeBuildDir() refuses while something is mounted inside",
  ignore: Deno.uid() !== 0,
  async fn() {
    const work = await Deno.makeTempDir({ prefix: "banger-build-" });
    const out = await new Deno.Command("unshare", {
      args: [
        "--mount",
        "--propagation",
        "private",
        "--",
        Deno.execPath(),
        "run",
        "-A",
        PROBE,
        `${work}/.build-debian-bookworm-x`,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    await Deno.remove(work, { recursive: true }).catch(() => {});
    const stderr = new TextDecoder().decode(out.stderr);
    assert.ok(out.success, stderr);
    const r = JSON.parse(new TextDecoder().decode(out.stdout));
    assert.match(r.error, /still mounted inside it/);
    assert.equal(r.kept, "keep me\n", "the delete walked into the mount");
    assert.equal(r.removed, true, "the directory stayed once unmounted");
  },
});
