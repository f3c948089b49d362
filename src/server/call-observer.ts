/**
 * What the service counts about each connection: the bridge reports (CallObserver), this moves
 * the connection's admission counts along and records the metrics — how a call ended, why a
 * stream was refused, and the per-call measures the session reports.
 */
import type { CallObserver } from '../call/bridge.js';
import type { EndReason } from '../call/session.js';
import type { CallOutcome, Metrics } from '../observability/metrics.js';
import type { StreamTicket } from './admission.js';

/** How a started call's end reason is counted in callbridge_calls_total. */
export const OUTCOME_BY_REASON: Record<EndReason | 'error', CallOutcome> = {
  'twilio-stop': 'completed',
  'twilio-closed': 'caller-hung-up',
  'upstream-failed': 'upstream-failed',
  'protocol-violation': 'rejected',
  unauthorized: 'rejected',
  'max-duration': 'max-duration',
  shutdown: 'drained',
  'agent-ended': 'agent-ended',
  transferred: 'transferred',
  idle: 'idle',
  voicemail: 'voicemail',
  error: 'error',
};

/** The session's measures, recorded as they come; one recorder serves every call. */
export function metricRecorder(metrics: Metrics): CallObserver['metric'] {
  return (event, handlingMs) => {
    switch (event.name) {
      case 'interruption':
        // The truncate's audio_end_ms, what the model now holds as heard of the item that was cut,
        // rather than the played position of the whole response.
        metrics.interruption({ heardMs: event.truncatedMs, reactionMs: handlingMs, cancelSent: event.cancelSent });
        return;
      case 'first-audio':
        metrics.firstAudioLatency(event.latencyMs);
        return;
      case 'upstream-error':
        metrics.upstreamError(event.code);
        return;
      case 'reconnect':
        metrics.reconnect(event.outcome);
        return;
      case 'tool-call':
        metrics.toolCall(event.kind, event.ok, event.durationMs);
        return;
    }
  };
}

/**
 * The observer of each connection, one per connection, so the admission counts follow it from
 * pending to started to ended without counting any step twice (the ticket sees to that). A stream
 * that ends without having started is a refused connection: refused by admission (replayed, busy)
 * when its ticket says so, for a bad call token otherwise, or a protocol violation.
 */
export function callObserverFactory(metrics: Metrics): (stream: StreamTicket) => CallObserver {
  const metric = metricRecorder(metrics);
  return (stream) => ({
    callStarted: () => {
      if (stream.started()) metrics.callStarted();
    },
    callEnded: (reason, started) => {
      if (!stream.ended()) return;
      if (started) metrics.callEnded(OUTCOME_BY_REASON[reason]);
      else metrics.rejectedConnection(reason === 'unauthorized' ? (stream.refusal ?? 'bad-token') : 'protocol');
    },
    metric,
  });
}
