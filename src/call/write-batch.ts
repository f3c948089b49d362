/**
 * Holds a call's socket writes while the actions of one input run, then lets them go in one
 * piece. ws writes every message with its own cork/uncork, i.e. one writev per message; corking
 * around the whole batch nests those (cork is counted) so an audio delta's media and marks, or a
 * barge-in's clear, cancel and truncate, leave in one syscall per socket instead of one each.
 */

/** The part of net.Socket this needs. */
export interface Corkable {
  cork(): void;
  uncork(): void;
}

export class WriteBatch {
  private readonly held: Corkable[] = [];

  /** Holds `transport`'s writes until `release`; holding one twice is harmless. */
  hold(transport: Corkable | null): void {
    if (transport === null || this.held.includes(transport)) return;
    transport.cork();
    this.held.push(transport);
  }

  /** Writes out everything held. Must run even when an action threw, or the socket stays corked. */
  release(): void {
    for (const transport of this.held) transport.uncork();
    this.held.length = 0;
  }
}
