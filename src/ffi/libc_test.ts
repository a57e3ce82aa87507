import assert from "node:assert/strict";
import { cString, makedev, splitDev } from "./libc.ts";

Deno.test("makedev() and splitDev() agree with glibc's encoding", () => {
  assert.equal(makedev(7, 0), 1792n); // /dev/loop0
  assert.equal(makedev(254, 0), 65024n); // /dev/vda
  assert.deepEqual(splitDev(makedev(259, 300)), [259, 300]);
  assert.deepEqual(splitDev(makedev(4095, 1048575)), [4095, 1048575]);
});

Deno.test("cString() terminates with NUL and refuses embedded NULs", () => {
  assert.deepEqual([...cString("ab")], [97, 98, 0]);
  assert.throws(() => cString("a\0b"), /NUL byte/);
});
