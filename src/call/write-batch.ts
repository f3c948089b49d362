/**
 * Holds a call's socket writes and lets them go in one piece. ws writes every message with its own
 * cork/uncork, i.e. one writev per message; corking around a batch nests those (cork is counted)
 * so an audio delta's media and marks, or a barge-in's clear, cancel and truncate, leave in one
 * syscall per socket instead of one each.
 *
 * The batch is released on a microtask, not at once: ws parses every frame of one TCP read in a
 * single synchronous pass, so the inputs of one read (several media frames that queued up under
 * load) share one write, and nothing waits past the end of the current callback.
 */

/** The part of net.Socket this needs. */
export interface Corkable {
  cork(): void;
  uncork(): void;
}

export class WriteBatch {
  private readonly held: Corkable[] = [];
  private releaseQueued = false;
  private readonly releaseNow = (): void => {
    this.releaseQueued = false;
    for (const transport of this.held) transport.uncork();
    this.held.length = 0;
  };

  /** Holds `transport`'s writes until the batch is released; holding one twice is harmless. */
  hold(transport: Corkable | null): void {
    if (transport === null || this.held.includes(transport)) return;
    transport.cork();
    this.held.push(transport);
  }

  /** Lets everything held go once the current callback is done. Must follow every hold, even after a throw. */
  release(): void {
    if (this.releaseQueued || this.held.length === 0) return;
    this.releaseQueued = true;
    queueMicrotask(this.releaseNow);
  }
}
