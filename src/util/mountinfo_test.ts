import assert from "node:assert/strict";
import { mountsUnder, parseMountinfo } from "./mountinfo.ts";

const SAMPLE = [
  "22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw",
  "90 22 254:0 /var/lib/banger-root/jail/firecracker/0123456789ab/root /var/lib/banger-root/jail/firecracker/0123456789ab/root rw,relatime - ext4 /dev/vda rw",
  "91 90 254:0 /usr/lib /var/lib/banger-root/jail/firecracker/0123456789ab/root/usr/lib ro,nosuid,nodev,relatime - ext4 /dev/vda rw",
  "92 22 254:0 / /var/lib/banger-root/jail/firecracker/0123456789abc rw - ext4 /dev/vda rw",
  "93 22 0:50 / /mnt/with\\040space rw - tmpfs tmpfs rw",
  "",
].join("\n");

Deno.test("parseMountinfo() reads mount points, roots and ro, unescaping", () => {
  const mounts = parseMountinfo(SAMPLE);
  assert.equal(mounts.length, 5);
  assert.equal(mounts[2]!.root, "/usr/lib");
  assert.equal(mounts[2]!.readOnly, true);
  assert.equal(mounts[1]!.readOnly, false);
  assert.equal(mounts[4]!.mountPoint, "/mnt/with space");
});

Deno.test("mountsUnder() finds a jail's mounts deepest first, not a sibling's", () => {
  const under = mountsUnder(
    parseMountinfo(SAMPLE),
    "/var/lib/banger-root/jail/firecracker/0123456789ab",
  );
  assert.deepEqual(under.map((m) => m.mountPoint), [
    "/var/lib/banger-root/jail/firecracker/0123456789ab/root/usr/lib",
    "/var/lib/banger-root/jail/firecracker/0123456789ab/root",
  ]);
});
