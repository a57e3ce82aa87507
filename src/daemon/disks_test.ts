import { deepStrictEqual, ok } from "node:assert/strict";
import { join } from "node:path";
import { run } from "../util/exec.ts";
import { generateHostKey } from "../ssh/keys.ts";
import { createWorkDisk, renderGuestEnv, writeSeedDisk } from "./disks.ts";

/** Reads a file from an ext4 image without mounting it. */
async function catFromImage(image: string, path: string): Promise<string> {
  return (await run("debugfs", ["-R", `cat ${path}`, image])).stdout;
}

Deno.test("writeSeedDisk() makes a labelled ext4 image holding the guest's identity", async () => {
  const dir = await Deno.makeTempDir();
  const hostKey = join(dir, "ssh_host_ed25519_key");
  await generateHostKey(hostKey, "calm-otter.vm");
  const seed = {
    hostname: "calm-otter",
    mac: "52:54:00:1e:00:02",
    address: "172.30.0.2",
    prefix: 24,
    gateway: "172.30.0.1",
    dns: "1.1.1.1",
    authorizedKey: "ssh-ed25519 AAAAtest banger",
    hostKeyPath: hostKey,
  };
  const image = join(dir, "seed.ext4");
  await writeSeedDisk(image, seed);
  const label = (await run("e2label", [image])).stdout.trim();
  deepStrictEqual(label, "banger-seed");
  deepStrictEqual(
    await catFromImage(image, "/guest.env"),
    renderGuestEnv(seed),
  );
  deepStrictEqual(
    await catFromImage(image, "/authorized_keys"),
    "ssh-ed25519 AAAAtest banger\n",
  );
  deepStrictEqual(
    await catFromImage(image, "/ssh_host_ed25519_key.pub"),
    await Deno.readTextFile(`${hostKey}.pub`),
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("renderGuestEnv() writes shell-safe single-quoted values", () => {
  const env = renderGuestEnv({
    hostname: "vm",
    mac: "52:54:00:00:00:02",
    address: "172.30.0.2",
    prefix: 24,
    gateway: "172.30.0.1",
    dns: "1.1.1.1",
    authorizedKey: "",
    hostKeyPath: "",
  });
  ok(env.includes("BANGER_HOSTNAME='vm'\n"));
  ok(env.includes("BANGER_PREFIX='24'\n"));
});

Deno.test("createWorkDisk() makes a sparse ext4 of the asked size seeded from the skeleton", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.mkdir(join(dir, "skel/.ssh"), { recursive: true });
  await Deno.writeTextFile(join(dir, "skel/.bashrc"), "# hi\n");
  const image = join(dir, "work.ext4");
  await createWorkDisk(image, 2048, join(dir, "skel"));
  const info = await Deno.stat(image);
  deepStrictEqual(info.size, 2048 * 1024 * 1024);
  ok(
    (info.blocks ?? 0) * 512 < 200 * 1024 * 1024,
    "the work disk is not sparse",
  );
  deepStrictEqual(await catFromImage(image, "/.bashrc"), "# hi\n");
  deepStrictEqual((await run("e2label", [image])).stdout.trim(), "banger-work");
  await Deno.remove(dir, { recursive: true });
});
