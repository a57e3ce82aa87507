import assert from "node:assert/strict";
import { Command } from "commander";
import { firstSentence, tidyHelp } from "./help.ts";

Deno.test("firstSentence() keeps what comes before the first full stop", () => {
  assert.equal(
    firstSentence("Boot stopped VMs (their disks are kept). More."),
    "boot stopped VMs (their disks are kept)",
  );
  assert.equal(firstSentence("list VMs"), "list VMs");
  assert.equal(firstSentence("Use v1.2 today. Then"), "use v1.2 today");
});

Deno.test("tidyHelp() lists long commands on one line of their own", () => {
  const program = new Command("banger");
  const vm = program.command("vm").description("manage VMs");
  vm.command("stop").description(
    "Stop VMs cleanly: the guest syncs\nand powers off. Data survives.",
  );
  tidyHelp(program);
  const stop = vm.commands[0]!;
  assert.equal(
    stop.summary(),
    "stop VMs cleanly: the guest syncs and powers off",
  );
  assert.equal(
    stop.description(),
    "Stop VMs cleanly: the guest syncs and powers off. Data survives.",
  );
  assert.match(vm.helpInformation(), /stop +stop VMs cleanly: the guest syncs/);
});
