/**
 * Keypad entries from Twilio `dtmf` messages (one per key): digits are collected until the
 * terminator key, `maxDigits`, or `timeoutMs` without a new key, then handed over as one entry.
 * Pure: the caller runs the timer this asks for and reports its expiry.
 */
import type { DtmfConfig } from '../config.js';

const VALID_KEY = /^[0-9*#]$/;

export type KeyResult =
  | { kind: 'invalid' }
  /** collecting: (re)start the pause timer with this delay */
  | { kind: 'collecting'; timeoutMs: number }
  | { kind: 'entry'; digits: string; ended: 'terminator' | 'max-digits' };

export class KeypadCollector {
  private digits = '';

  constructor(private readonly config: DtmfConfig) {}

  get collecting(): boolean {
    return this.digits !== '';
  }

  press(key: string): KeyResult {
    if (!VALID_KEY.test(key)) return { kind: 'invalid' };
    if (this.config.terminator !== '' && key === this.config.terminator) {
      // A terminator with nothing before it is still an entry: "press # to continue" menus use it.
      const digits = this.digits === '' ? key : this.digits;
      this.digits = '';
      return { kind: 'entry', digits, ended: 'terminator' };
    }
    this.digits += key;
    if (this.digits.length >= this.config.maxDigits) {
      const digits = this.digits;
      this.digits = '';
      return { kind: 'entry', digits, ended: 'max-digits' };
    }
    return { kind: 'collecting', timeoutMs: this.config.timeoutMs };
  }

  /** The pause timer expired: whatever was collected is the entry. */
  timeout(): string | null {
    if (this.digits === '') return null;
    const digits = this.digits;
    this.digits = '';
    return digits;
  }
}
