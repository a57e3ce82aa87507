/**
 * Help layout. Long command descriptions are written as paragraphs; in a
 * parent's command list each command shows one short line instead.
 *
 * @module
 */
import type { Command } from "commander";

/**
 * Gives every subcommand of `program` without a summary the first sentence
 * of its description as one, and joins hard-wrapped lines of descriptions
 * so the terminal's width decides the wrapping.
 */
export function tidyHelp(program: Command): void {
  for (const command of program.commands) {
    const text = command.description();
    if (text) {
      const joined = text.replace(/([^\n])\n(?=[^\n])/g, "$1 ");
      command.description(joined);
      if (!command.summary()) command.summary(firstSentence(joined));
    }
    tidyHelp(command);
  }
}

/** The text up to the first full stop, without it, lower-cased first. */
export function firstSentence(text: string): string {
  const end = text.search(/\.(\s|$)/);
  const sentence = (end === -1 ? text : text.slice(0, end)).trim();
  return sentence.charAt(0).toLowerCase() + sentence.slice(1);
}
