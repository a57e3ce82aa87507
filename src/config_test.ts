import { deepStrictEqual, throws } from "node:assert/strict";
import { ConfigError, hostDefaults, parseConfig } from "./config.ts";

const HOST = { cpus: 16, memoryMib: 32768 };

Deno.test("parseConfig() fills host-aware defaults with their provenance", () => {
  const config = parseConfig("", HOST);
  deepStrictEqual(config.vmDefaults.vcpu, { value: 4, from: "host" });
  deepStrictEqual(config.vmDefaults.memoryMib, { value: 4096, from: "host" });
  deepStrictEqual(config.vmDefaults.diskMib, { value: 8192, from: "built-in" });
  deepStrictEqual(config.vmm, "auto");
  deepStrictEqual(config.bridgeName, "br-banger");
});

Deno.test("parseConfig() takes configured values and marks them as config", () => {
  const config = parseConfig(
    `vmm = "qemu"\n[vm_defaults]\nvcpu = 3\nmemory_mib = 1536\ndisk_size = "4G"\n`,
    HOST,
  );
  deepStrictEqual(config.vmm, "qemu");
  deepStrictEqual(config.vmDefaults.vcpu, { value: 3, from: "config" });
  deepStrictEqual(config.vmDefaults.memoryMib, { value: 1536, from: "config" });
  deepStrictEqual(config.vmDefaults.diskMib, { value: 4096, from: "config" });
});

Deno.test("hostDefaults() caps and floors vCPUs and memory", () => {
  deepStrictEqual(hostDefaults({ cpus: 2, memoryMib: 4096 }), {
    vcpu: 2,
    memoryMib: 1024,
  });
  deepStrictEqual(hostDefaults({ cpus: 64, memoryMib: 262144 }), {
    vcpu: 4,
    memoryMib: 8192,
  });
});

Deno.test("parseConfig() names the key and the problem, never falling back", () => {
  const cases: [string, string][] = [
    ['vmm = "xen"', '"vmm"'],
    ["tap_pool_size = -1", '"tap_pool_size"'],
    ['surprise = "x"', '"surprise" in "config.toml": unknown key'],
    ['[vm_defaults]\ndisk_size = "0G"', '"vm_defaults.disk_size"'],
    ["[vm_defaults]\nlaser = 1", '"vm_defaults.laser"'],
    [
      '[vm_defaults]\ndisk_size = "20000G"',
      '"vm_defaults.disk_size" in "config.toml": Invalid vm_defaults.disk_size "20000G": at most 16384G',
    ],
    ["[vm_defaults]\nmemory_mib = 999999", '"vm_defaults.memory_mib"'],
    ["[vm_defaults]\nmemory_mib = 1", "must be 256 to 32768"],
    ['[vm_defaults]\nsystem_overlay_size = "abc"', "unknown key"],
    ['bridge_name = "eth0"', '"bridge_name"'],
    ['cidr = "not-a-net"', '"cidr"'],
    ["vmm = ", 'Cannot read "config.toml"'],
  ];
  for (const [text, expected] of cases) {
    throws(
      () => parseConfig(text, HOST),
      (e: Error) => e instanceof ConfigError && e.message.includes(expected),
      `config ${JSON.stringify(text)} should fail naming ${expected}`,
    );
  }
});

Deno.test("parseConfig() takes default_kernel as a kernel name only", () => {
  deepStrictEqual(parseConfig("", HOST).defaultKernel, undefined);
  deepStrictEqual(
    parseConfig('default_kernel = "fc-6.1"\n', HOST).defaultKernel,
    "fc-6.1",
  );
  throws(
    () => parseConfig('default_kernel = "../vmlinux"\n', HOST),
    {
      name: "ConfigError",
      message: /^Invalid "default_kernel" in "config\.toml": must be 1 to 63/,
    },
  );
});
