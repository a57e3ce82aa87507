import { deepStrictEqual } from "node:assert/strict";
import { removeKnownHosts } from "./known_hosts.ts";

Deno.test("removeKnownHosts() drops lines naming the VM by name or address only", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/known_hosts`;
  await Deno.writeTextFile(
    path,
    [
      "calm-otter.vm ssh-ed25519 AAAA1",
      "172.30.0.2 ssh-ed25519 AAAA2",
      "[172.30.0.2]:2222 ssh-ed25519 AAAA3",
      "calm-otter.vm.example ssh-ed25519 AAAA4",
      "other.vm,172.30.0.3 ssh-ed25519 AAAA5",
      "",
    ].join("\n"),
  );
  const removed = await removeKnownHosts(path, ["calm-otter.vm", "172.30.0.2"]);
  deepStrictEqual(removed, 3);
  deepStrictEqual(
    await Deno.readTextFile(path),
    "calm-otter.vm.example ssh-ed25519 AAAA4\nother.vm,172.30.0.3 ssh-ed25519 AAAA5\n",
  );
  deepStrictEqual(await removeKnownHosts(`${dir}/missing`, ["x"]), 0);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("removeKnownHosts() run concurrently for several VMs removes every one", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/known_hosts`;
  const names = Array.from({ length: 8 }, (_, i) => `vm${i}.vm`);
  await Deno.writeTextFile(
    path,
    [...names.map((n) => `${n} ssh-ed25519 AAAA`), "keep.vm ssh-ed25519 B", ""]
      .join("\n"),
  );
  const removed = await Promise.all(
    names.map((n) => removeKnownHosts(path, [n])),
  );
  deepStrictEqual(removed, names.map(() => 1));
  deepStrictEqual(await Deno.readTextFile(path), "keep.vm ssh-ed25519 B\n");
  await Deno.remove(dir, { recursive: true });
});
