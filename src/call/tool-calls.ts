/**
 * Function calls the model makes, from its item to the output written back. Pure bookkeeping:
 *
 * - a call runs only once its item is done with status `completed` (the server also finishes the
 *   items of cancelled and incomplete responses, with another status), and at most once per
 *   `call_id`, whatever the server repeats;
 * - every call that runs is answered exactly once; a result for a call already answered, or never
 *   run, is dropped;
 * - calls of a response that ended without running them are reported, so their items can leave
 *   the conversation (the model must never see a call without an output).
 */
import type { FunctionCallItem } from '../realtime/events.js';

export type ToolOutcome = { ok: true; output: string } | { ok: false; error: string };

export interface ToolCallRecord {
  callId: string;
  itemId: string;
  responseId: string;
  name: string;
  arguments: string;
  state: 'pending' | 'running' | 'answered' | 'dropped';
  startedAtMs: number | null;
  finishedAtMs: number | null;
  outcome: ToolOutcome | null;
  /** the upstream session it belonged to is gone: its output cannot be written as an output */
  orphaned: boolean;
}

/** Records kept for logs and reports; a call that lasts hours keeps only the recent ones. */
const MAX_RECORDS = 100;

export class ToolCalls {
  private readonly byCallId = new Map<string, ToolCallRecord>();
  /** every call_id ever seen on this call: a repeated item never runs a second time */
  private readonly seen = new Set<string>();
  readonly records: ToolCallRecord[] = [];

  toolCall(callId: string): ToolCallRecord | null {
    return this.byCallId.get(callId) ?? null;
  }

  /** Calls started and not yet answered. */
  get running(): number {
    let n = 0;
    for (const r of this.byCallId.values()) if (r.state === 'running') n += 1;
    return n;
  }

  onItemAdded(item: FunctionCallItem & { id: string }, responseId: string): void {
    if (this.seen.has(item.call_id)) return;
    this.seen.add(item.call_id);
    const record: ToolCallRecord = {
      callId: item.call_id,
      itemId: item.id,
      responseId,
      name: item.name,
      arguments: item.arguments,
      state: 'pending',
      startedAtMs: null,
      finishedAtMs: null,
      outcome: null,
      orphaned: false,
    };
    this.byCallId.set(item.call_id, record);
    this.records.push(record);
    if (this.records.length > MAX_RECORDS) this.records.shift();
  }

  /** The item is done: the record to run now, or null (not completed, or already run). */
  onItemDone(item: FunctionCallItem & { id: string }, responseId: string, nowMs: number): ToolCallRecord | null {
    if (!this.seen.has(item.call_id)) this.onItemAdded(item, responseId);
    const record = this.byCallId.get(item.call_id);
    if (record === undefined || record.state !== 'pending') return null;
    if (item.status !== 'completed') return null;
    record.name = item.name;
    record.arguments = item.arguments;
    record.state = 'running';
    record.startedAtMs = nowMs;
    return record;
  }

  /** The response is over: its calls that never ran are dropped; their item ids are returned. */
  onResponseDone(responseId: string): string[] {
    const dropped: string[] = [];
    for (const record of this.byCallId.values()) {
      if (record.responseId !== responseId || record.state !== 'pending') continue;
      record.state = 'dropped';
      dropped.push(record.itemId);
    }
    this.forgetFinished();
    return dropped;
  }

  /** A result: the record answered by it, or null when the call is unknown or answered already. */
  onResult(callId: string, outcome: ToolOutcome, nowMs: number): ToolCallRecord | null {
    const record = this.byCallId.get(callId);
    if (record === undefined || record.state !== 'running') return null;
    record.state = 'answered';
    record.outcome = outcome;
    record.finishedAtMs = nowMs;
    this.forgetFinished();
    return record;
  }

  /**
   * The upstream session died: calls not yet run died with it; running ones still finish, but
   * their output has no call to attach to in the next session.
   */
  onUpstreamLost(): void {
    for (const record of this.byCallId.values()) {
      if (record.state === 'pending') record.state = 'dropped';
      if (record.state === 'running') record.orphaned = true;
    }
    this.forgetFinished();
  }

  /** Only unfinished calls are looked up by id; answered ones live on in `records`. */
  private forgetFinished(): void {
    for (const [callId, record] of this.byCallId) {
      if (record.state === 'answered' || record.state === 'dropped') this.byCallId.delete(callId);
    }
  }
}
