/**
 * The Firecracker driver against the stand-in firecracker (no jailer): a
 * failed configuration leaves no process, and `release` ends a Firecracker
 * whose pid only its pid file knows (a daemon that died mid-launch).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { firecrackerDriver } from "../../src/vmm/firecracker/driver.ts";
import { FIRECRACKER_FILES } from "../../src/vmm/firecracker/requests.ts";
import { apiCall } from "../../src/vmm/firecracker/api.ts";
import { findProcesses } from "../../src/util/procfs.ts";

const STANDIN = new URL("../firecracker_standin/firecracker", import.meta.url)
  .pathname;
const ID = "0123456789ab";

const driver = firecrackerDriver({ bin: STANDIN, version: [1, 14, 1] });

async function vmDir(): Promise<{ base: string; dir: string }> {
  const base = await Deno.makeTempDir({ prefix: "fc-driver-" });
  const dir = join(base, ID);
  await Deno.mkdir(dir);
  return { base, dir };
}

async function firecrackersOf(id: string): Promise<number[]> {
  return await findProcesses(`--id ${id}`);
}

Deno.test("a Firecracker launch that fails while configuring leaves no process", async () => {
  const { base, dir } = await vmDir();
  try {
    for (const f of ["vmlinux", "root.img", "work.ext4", "seed.ext4"]) {
      await Deno.writeFile(join(dir, f), new Uint8Array(4096));
    }
    await assert.rejects(
      driver.launch({
        id: ID,
        name: "doomed",
        vcpu: 1,
        memoryMib: 256,
        kernel: join(dir, "vmlinux"),
        initrd: undefined,
        cmdline: ["console=ttyS0"],
        drives: [
          {
            id: "root",
            path: join(dir, "root.img"),
            format: "raw",
            readOnly: false,
          },
          {
            id: "work",
            path: join(dir, "work.ext4"),
            format: "raw",
            readOnly: false,
          },
          {
            id: "seed",
            path: join(dir, "seed.ext4"),
            format: "raw",
            readOnly: true,
          },
        ],
        // No such tap: Firecracker refuses the network interface.
        net: { tap: "bgtap9999", mac: "52:54:00:00:00:09" },
        dir,
        controlSocket: join(base, "9.sock"),
        consoleLog: join(dir, "console.log"),
      }),
      /Cannot start VM "doomed" with Firecracker/,
    );
    assert.deepEqual(await firecrackersOf(ID), []);
    assert.equal(
      await Deno.stat(join(base, "9.sock")).then(() => true, () => false),
      false,
      "the API socket is left",
    );
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});

Deno.test("release() ends a Firecracker known only by its pid file", async () => {
  const { base, dir } = await vmDir();
  const socket = join(base, "3.sock");
  const child = new Deno.Command(STANDIN, {
    args: ["--api-sock", socket, "--id", ID],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    const deadline = Date.now() + 20_000;
    while (true) {
      try {
        await apiCall(socket, { method: "GET", path: "/" });
        break;
      } catch (error) {
        if (Date.now() > deadline) throw error;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    await Deno.writeTextFile(
      join(dir, FIRECRACKER_FILES.pid),
      `${child.pid}\n`,
    );
    await driver.release!(ID, dir, socket);
    // release() returns once the process is gone; nothing to wait for.
    assert.deepEqual(await firecrackersOf(ID), [], "the Firecracker runs on");
    assert.equal(
      await Deno.stat(join(dir, FIRECRACKER_FILES.pid)).then(
        () => true,
        () => false,
      ),
      false,
      "the pid file is left",
    );
  } finally {
    try {
      child.kill("SIGKILL");
    } catch {
      // Ended by the test.
    }
    await child.status;
    await Deno.remove(base, { recursive: true });
  }
});
