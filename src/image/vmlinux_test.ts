import { deepStrictEqual, rejects, throws } from "node:assert/strict";
import { gzipSync } from "node:zlib";
import { extractVmlinux, isCompleteElf, locatePayload } from "./vmlinux.ts";

/** A minimal ELF64 header whose section table ends at `size`. */
function fakeElf(size: number): Uint8Array {
  const elf = new Uint8Array(size);
  elf.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]);
  const view = new DataView(elf.buffer);
  const entries = 2;
  const entrySize = 64;
  view.setBigUint64(0x28, BigInt(size - entries * entrySize), true);
  view.setUint16(0x3a, entrySize, true);
  view.setUint16(0x3c, entries, true);
  return elf;
}

/** A bzImage-shaped file: setup sectors, "HdrS" and a payload at its offset. */
function fakeBzImage(payload: Uint8Array, setupSects = 3): Uint8Array {
  const start = (setupSects + 1) * 512;
  const payloadOffset = 0x40;
  const image = new Uint8Array(start + payloadOffset + payload.byteLength + 16);
  image[0x1f1] = setupSects;
  image.set(new TextEncoder().encode("HdrS"), 0x202);
  const view = new DataView(image.buffer);
  view.setUint32(0x248, payloadOffset, true);
  view.setUint32(0x24c, payload.byteLength, true);
  image.set(payload, start + payloadOffset);
  return image;
}

Deno.test("locatePayload() reads offset, length and codec from the setup header", () => {
  const payload = gzipSync(fakeElf(4096));
  const located = locatePayload(fakeBzImage(payload));
  deepStrictEqual(located, {
    offset: 4 * 512 + 0x40,
    length: payload.byteLength,
    codec: "gzip",
  });
});

Deno.test("locatePayload() refuses files that are not bzImages", () => {
  throws(() => locatePayload(new Uint8Array(100)), /too small/);
  throws(() => locatePayload(new Uint8Array(4096)), /no "HdrS" boot header/);
  throws(
    () => locatePayload(fakeBzImage(new Uint8Array([1, 2, 3, 4]))),
    /compression/,
  );
});

Deno.test("isCompleteElf() needs the whole section table", () => {
  const elf = fakeElf(8192);
  deepStrictEqual(isCompleteElf(elf), true);
  deepStrictEqual(isCompleteElf(elf.subarray(0, 4096)), false);
  deepStrictEqual(isCompleteElf(new Uint8Array(8192)), false);
});

Deno.test("extractVmlinux() decompresses the payload into the ELF file", async () => {
  const dir = await Deno.makeTempDir();
  const elf = fakeElf(64 * 1024);
  await Deno.writeFile(`${dir}/bzImage`, fakeBzImage(gzipSync(elf)));
  await extractVmlinux(`${dir}/bzImage`, `${dir}/vmlinux`);
  deepStrictEqual(await Deno.readFile(`${dir}/vmlinux`), elf);
  // A payload whose ELF is cut short is an error, not a broken kernel file.
  await Deno.writeFile(
    `${dir}/bad`,
    fakeBzImage(gzipSync(elf.subarray(0, 1024))),
  );
  await rejects(
    extractVmlinux(`${dir}/bad`, `${dir}/out`),
    /did not produce a complete ELF/,
  );
  await Deno.remove(dir, { recursive: true });
});
