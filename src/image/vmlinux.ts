/**
 * Extracts the ELF `vmlinux` from an x86 `bzImage`.
 *
 * Firecracker on x86_64 loads only ELF kernels, and QEMU's microvm machine
 * boots the ELF through its PVH entry faster than the bzImage under TCG. The
 * bzImage setup header says where its compressed payload starts and how long
 * it is, so no scanning for magic numbers is needed.
 *
 * @module
 */
import { run } from "../util/exec.ts";

/** Offset of the setup header's `setup_sects` byte. */
const SETUP_SECTS_OFFSET = 0x1f1;
/** Offset of the "HdrS" magic that marks a boot protocol header. */
const HEADER_MAGIC_OFFSET = 0x202;
/** Offsets of `payload_offset` and `payload_length` (boot protocol 2.08+). */
const PAYLOAD_OFFSET_OFFSET = 0x248;
const PAYLOAD_LENGTH_OFFSET = 0x24c;
const SECTOR = 512;

/** A payload format and the program that decompresses it from stdin. */
interface Codec {
  name: string;
  magic: number[];
  program: string;
  args: string[];
}

const CODECS: Codec[] = [
  {
    name: "lz4",
    magic: [0x02, 0x21, 0x4c, 0x18],
    program: "lz4",
    args: ["-dc"],
  },
  { name: "gzip", magic: [0x1f, 0x8b], program: "gzip", args: ["-dc"] },
  {
    name: "xz",
    magic: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00],
    program: "xz",
    args: ["-dc", "--single-stream"],
  },
  {
    name: "zstd",
    magic: [0x28, 0xb5, 0x2f, 0xfd],
    program: "zstd",
    args: ["-dc"],
  },
];

/** Where a bzImage's compressed kernel sits and how it is compressed. */
export interface BzImagePayload {
  offset: number;
  length: number;
  codec: string;
}

/**
 * Reads the payload location from a bzImage's setup header.
 *
 * Throws when the header is missing or the compression is unsupported.
 */
export function locatePayload(image: Uint8Array): BzImagePayload {
  const view = new DataView(image.buffer, image.byteOffset, image.byteLength);
  if (image.byteLength < PAYLOAD_LENGTH_OFFSET + 4) {
    throw new Error(
      "Cannot read kernel image: file is too small for a bzImage",
    );
  }
  const magic = new TextDecoder().decode(
    image.subarray(HEADER_MAGIC_OFFSET, HEADER_MAGIC_OFFSET + 4),
  );
  if (magic !== "HdrS") {
    throw new Error('Cannot read kernel image: no "HdrS" boot header');
  }
  const setupSects = image[SETUP_SECTS_OFFSET] || 4;
  const protectedModeStart = (setupSects + 1) * SECTOR;
  const offset = protectedModeStart +
    view.getUint32(PAYLOAD_OFFSET_OFFSET, true);
  const length = view.getUint32(PAYLOAD_LENGTH_OFFSET, true);
  if (offset + length > image.byteLength) {
    throw new Error("Cannot read kernel image: payload runs past end of file");
  }
  const codec = CODECS.find((c) =>
    c.magic.every((byte, i) => image[offset + i] === byte)
  );
  if (!codec) {
    throw new Error(
      "Cannot read kernel image: payload compression is not lz4, gzip, xz or zstd",
    );
  }
  return { offset, length, codec: codec.name };
}

/**
 * Checks that `data` is a complete 64-bit little-endian ELF executable: the
 * section header table must end inside the data.
 */
export function isCompleteElf(data: Uint8Array): boolean {
  if (data.byteLength < 64) return false;
  if (
    data[0] !== 0x7f || data[1] !== 0x45 || data[2] !== 0x4c ||
    data[3] !== 0x46 || data[4] !== 2 || data[5] !== 1
  ) {
    return false;
  }
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const sectionTable = Number(view.getBigUint64(0x28, true));
  const entrySize = view.getUint16(0x3a, true);
  const entries = view.getUint16(0x3c, true);
  return sectionTable + entrySize * entries <= data.byteLength;
}

/**
 * Decompresses the kernel inside the bzImage at `bzImagePath` and writes the
 * ELF to `outPath`.
 *
 * Requires `--allow-read`, `--allow-write` and `--allow-run` for the
 * decompressor (lz4, gzip, xz or zstd). Throws when the result is not a whole
 * ELF file.
 */
export async function extractVmlinux(
  bzImagePath: string,
  outPath: string,
): Promise<void> {
  const image = await Deno.readFile(bzImagePath);
  const payload = locatePayload(image);
  const codec = CODECS.find((c) => c.name === payload.codec)!;
  // The kernel's own decompressor ignores the 4-byte size trailer that
  // follows some formats; the command-line tools may complain about it, so
  // the exit status is not trusted and the ELF is checked instead.
  const result = await run(codec.program, codec.args, {
    stdin: image.subarray(payload.offset, payload.offset + payload.length),
    okCodes: [0, 1, 2],
  });
  if (!isCompleteElf(result.stdoutBytes)) {
    throw new Error(
      `Cannot extract vmlinux from "${bzImagePath}": ${codec.program} did not produce a complete ELF file`,
    );
  }
  await Deno.writeFile(outPath, result.stdoutBytes);
}
