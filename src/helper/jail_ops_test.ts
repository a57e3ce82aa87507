import assert from "node:assert/strict";
import { join } from "node:path";
import { RpcError } from "../protocol/envelope.ts";
import { checkJailId, checkStateFile, ownerGid } from "./jail_ops.ts";

Deno.test("checkJailId() accepts banger ids only", () => {
  assert.equal(checkJailId("0123456789ab"), "0123456789ab");
  for (
    const bad of ["../etc", "0123456789AB", "0123456789a", "x".repeat(12), ""]
  ) {
    assert.throws(() => checkJailId(bad), RpcError);
  }
});

Deno.test("checkStateFile() refuses paths outside, traversal, symlinks and dirs", async () => {
  const state = await Deno.makeTempDir({ prefix: "banger-state-" });
  const vm = join(state, "vms", "0123456789ab");
  await Deno.mkdir(vm, { recursive: true });
  const disk = join(vm, "root.img");
  await Deno.writeTextFile(disk, "");
  await Deno.symlink("/etc/shadow", join(vm, "evil.img"));
  try {
    assert.equal(await checkStateFile(disk, [vm], "drive"), disk);
    const refused = async (path: string, why: RegExp) =>
      await assert.rejects(
        checkStateFile(path, [vm], "drive"),
        (e: unknown) => {
          assert.ok(e instanceof RpcError && e.code === "bad_request");
          assert.match(e.message, why);
          return true;
        },
      );
    await refused("/etc/shadow", /not inside banger's state/);
    await refused(`${vm}/../../../../etc/shadow`, /not inside banger's state/);
    await refused("root.img", /not inside banger's state/);
    await refused(join(vm, "evil.img"), /not a regular file/);
    await refused(`${vm}/missing.img`, /not a regular file/);
    await refused(vm, /not inside banger's state/);
  } finally {
    await Deno.remove(state, { recursive: true });
  }
});

Deno.test("ownerGid() reads the primary group from passwd", async () => {
  const file = await Deno.makeTempFile();
  await Deno.writeTextFile(
    file,
    "root:x:0:0:root:/root:/bin/bash\ndev:x:1000:1500:Dev:/home/dev:/bin/sh\n",
  );
  try {
    assert.equal(await ownerGid(1000, file), 1500);
    assert.equal(await ownerGid(0, file), 0);
    await assert.rejects(ownerGid(4242, file), /owner uid 4242/);
  } finally {
    await Deno.remove(file);
  }
});
