import assert from "node:assert/strict";
import { join } from "node:path";
import { RpcError } from "../protocol/envelope.ts";
import { closeJailSources } from "../jailer/chroot.ts";
import { checkJailId, openStateFile, ownerGid } from "./jail_ops.ts";

Deno.test("checkJailId() accepts banger ids only", () => {
  assert.equal(checkJailId("0123456789ab"), "0123456789ab");
  for (
    const bad of ["../etc", "0123456789AB", "0123456789a", "x".repeat(12), ""]
  ) {
    assert.throws(() => checkJailId(bad), RpcError);
  }
});

Deno.test("openStateFile() admits the owner's regular files inside the state only", async () => {
  const state = await Deno.realPath(
    await Deno.makeTempDir({ prefix: "banger-state-" }),
  );
  const vm = join(state, "vms", "0123456789ab");
  await Deno.mkdir(vm, { recursive: true });
  const disk = join(vm, "root.img");
  await Deno.writeTextFile(disk, "");
  await Deno.symlink("/etc/shadow", join(vm, "evil.img"));
  // A directory on the way that is a symlink out of the state.
  await Deno.symlink("/etc", join(vm, "etc"));
  const uid = Deno.uid()!;
  try {
    const source = openStateFile(disk, [vm], "drive", uid);
    assert.equal(source.realPath, disk);
    closeJailSources([source]);

    const refused = (path: string, why: RegExp, owner = uid) =>
      assert.throws(
        () => openStateFile(path, [vm], "drive", owner),
        (e: unknown) => {
          assert.ok(e instanceof RpcError && e.code === "bad_request");
          assert.match(e.message, why);
          return true;
        },
      );
    refused("/etc/shadow", /not inside banger's state/);
    refused(`${vm}/../../../../etc/shadow`, /not inside banger's state/);
    refused("root.img", /not inside banger's state/);
    refused(join(vm, "evil.img"), /it is a symlink/);
    refused(join(vm, "etc/hostname"), /resolves to "\/etc\/hostname", outside/);
    refused(`${vm}/missing.img`, /cannot open it/);
    refused(vm, /not inside banger's state/);
    refused(disk, /owned by uid \d+, not the owner uid 4242/, 4242);
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
