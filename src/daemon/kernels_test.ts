import assert from "node:assert/strict";
import { join } from "node:path";
import { RpcError } from "../protocol/envelope.ts";
import { KernelService } from "./kernels.ts";

const ELF = new Uint8Array([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]);

async function setup() {
  const root = await Deno.makeTempDir({ prefix: "banger-kernels-" });
  const importDir = join(root, "home/.local/state/banger/import");
  await Deno.mkdir(join(importDir, "x"), { recursive: true });
  const service = new KernelService(join(root, "kernels"), importDir);
  return { root, importDir, service };
}

function code(expected: string) {
  return (error: unknown) => {
    assert.ok(error instanceof RpcError, String(error));
    assert.equal(error.code, expected);
    return true;
  };
}

Deno.test("KernelService imports a kernel without initrd and lists it", async () => {
  const { root, importDir, service } = await setup();
  try {
    const staged = join(importDir, "x/vmlinux");
    await Deno.writeFile(staged, ELF);
    const kernel = await service.import({ name: "fc-6.1", vmlinux: staged });
    assert.equal(kernel.initrd, false);
    assert.deepEqual((await service.list()).map((k) => k.name), ["fc-6.1"]);
    const got = await service.get("fc-6.1");
    assert.equal(got.initrdPath, undefined);
    assert.deepEqual(await Deno.readFile(got.vmlinux), ELF);
    // The staged copy is gone; the import left nothing else behind.
    assert.equal(await Deno.lstat(staged).then(() => true, () => false), false);
    const entries = [];
    for await (const e of Deno.readDir(join(root, "kernels"))) {
      entries.push(e.name);
    }
    assert.deepEqual(entries, ["fc-6.1"]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("KernelService keeps an initrd when given one", async () => {
  const { root, importDir, service } = await setup();
  try {
    await Deno.writeFile(join(importDir, "x/vmlinux"), ELF);
    await Deno.writeTextFile(join(importDir, "x/initrd"), "cpio");
    await service.import({
      name: "debian",
      vmlinux: join(importDir, "x/vmlinux"),
      initrd: join(importDir, "x/initrd"),
    });
    const got = await service.get("debian");
    assert.equal(await Deno.readTextFile(got.initrdPath!), "cpio");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("KernelService refuses bzImages, outside paths and duplicates", async () => {
  const { root, importDir, service } = await setup();
  try {
    const bz = join(importDir, "x/bzImage");
    await Deno.writeFile(bz, new Uint8Array([0x4d, 0x5a, 0, 0]));
    await assert.rejects(
      service.import({ name: "bz", vmlinux: bz }),
      code("bad_request"),
    );
    await assert.rejects(
      service.import({ name: "etc", vmlinux: "/etc/hostname" }),
      code("bad_request"),
    );
    await assert.rejects(
      service.import({
        name: "up",
        vmlinux: `${importDir}/../../../../../etc/hostname`,
      }),
      code("bad_request"),
    );
    await Deno.writeFile(join(importDir, "x/a"), ELF);
    await service.import({ name: "one", vmlinux: join(importDir, "x/a") });
    await Deno.writeFile(join(importDir, "x/b"), ELF);
    await assert.rejects(
      service.import({ name: "one", vmlinux: join(importDir, "x/b") }),
      code("already_exists"),
    );
    await assert.rejects(service.get("missing"), code("not_found"));
    assert.deepEqual((await service.list()).map((k) => k.name), ["one"]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
