/**
 * Work started on a call's path and left to finish on its own (a report file, a recording), which
 * a shutdown must still wait for, up to a deadline, before the process exits.
 */
export class PendingWork {
  private readonly running = new Set<Promise<unknown>>();

  get size(): number {
    return this.running.size;
  }

  /** Follows `work` until it settles; never rejects into the caller. */
  track(work: Promise<unknown>): void {
    const followed = work.then(
      () => undefined,
      () => undefined,
    );
    this.running.add(followed);
    void followed.then(() => this.running.delete(followed));
  }

  /** Resolves once everything tracked has settled, or after `timeoutMs`; true when all settled. */
  async settle(timeoutMs: number): Promise<boolean> {
    if (this.running.size === 0) return true;
    let timer: NodeJS.Timeout | undefined;
    const all = Promise.all([...this.running]).then(() => true);
    const late = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), Math.max(0, timeoutMs));
    });
    try {
      return await Promise.race([all, late]);
    } finally {
      clearTimeout(timer);
    }
  }
}
