/**
 * Idle reminders. Once the caller has heard the agent's last words and neither side has said
 * anything for `reminderAfterMs`, the agent checks in; after `maxReminders` check-ins the caller
 * did not answer, it says goodbye. Pure: the session tells it whether the call is idle after
 * every input; it answers with the timer to start or stop.
 */
import type { IdleConfig } from '../config.js';

export type IdleTimerChange = { kind: 'start'; delayMs: number } | { kind: 'stop' } | null;

export class IdleMonitor {
  private idle = false;
  private reminders = 0;

  constructor(private readonly config: IdleConfig) {}

  get remindersSent(): number {
    return this.reminders;
  }

  /** Called after every input with whether the call is idle now; returns a timer change on a transition. */
  update(isIdle: boolean): IdleTimerChange {
    if (isIdle === this.idle) return null;
    this.idle = isIdle;
    return isIdle ? { kind: 'start', delayMs: this.config.reminderAfterMs } : { kind: 'stop' };
  }

  /** The caller spoke or pressed a key: the reminders so far were answered. */
  callerActive(): void {
    this.reminders = 0;
  }

  /** The idle timer fired: check in, or give up once the reminders went unanswered. */
  fire(): 'remind' | 'give-up' | null {
    if (!this.idle) return null;
    // The timer is spent; the next idle stretch (after the reminder is heard) starts a new one.
    this.idle = false;
    if (this.reminders < this.config.maxReminders) {
      this.reminders += 1;
      return 'remind';
    }
    return 'give-up';
  }
}
