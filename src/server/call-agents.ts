/**
 * The agent of each call, per process: the webhook announces the call (and AGENT_CONFIG_URL is
 * asked at once), the stream's `start` resolves it — profile, override, caller context — while
 * the upstream connects. The session configures nothing upstream until it has the result
 * (src/call/session.ts, `agent-resolved`), and the result always comes: every failure falls back
 * to the static profile, with a warning, within AGENT_CONFIG_TIMEOUT_MS.
 */
import { performance } from 'node:perf_hooks';
import type { AgentConfig, AppConfig } from '../config.js';
import type { Logger } from '../observability/logger.js';
import type { AgentConfigFetchOutcome, Metrics } from '../observability/metrics.js';
import { DIRECTION_PARAMETER, FROM_PARAMETER, PROFILE_PARAMETER, TO_PARAMETER, callContextFrom } from './twiml-contract.js';
import { AgentConfigFetcher, MIN_AGENT_CONFIG_CACHE_ENTRIES } from '../agent/config-fetch.js';
import type { AgentConfigRequest } from '../agent/config-fetch.js';
import { applyOverride, personalize, selectProfile } from '../agent/resolve.js';
import type { SelectedBy } from '../agent/resolve.js';
import type { CallContext } from '../agent/template.js';

/** The agent a call runs, and the profile it came from. */
export interface ResolvedAgent {
  agent: AgentConfig;
  profile: string;
}

/**
 * Whether AGENT_CONFIG_URL's answer applies, as the call's log line says: `off` (no URL), `applied`,
 * `empty` (answered with nothing to override), or why the static profile answered instead.
 */
export type OverrideOutcome = 'off' | 'applied' | 'empty' | 'timeout' | 'error' | 'invalid';

export interface CallAgentsOptions {
  config: AppConfig;
  metrics: Metrics;
  /** ms since the epoch: `{{now}}`, the request's `timestamp` */
  wallClock: () => number;
}

export class CallAgents {
  private readonly config: AppConfig;
  private readonly metrics: Metrics;
  private readonly wallClock: () => number;
  private readonly fetcher: AgentConfigFetcher | null;
  private readonly restCredentials: boolean;

  constructor({ config, metrics, wallClock }: CallAgentsOptions) {
    this.config = config;
    this.metrics = metrics;
    this.wallClock = wallClock;
    this.restCredentials = config.twilioAccountSid !== null && config.twilioAuthToken !== null;
    this.fetcher =
      config.agentConfigUrl === null
        ? null
        : new AgentConfigFetcher({
            url: config.agentConfigUrl,
            secret: config.toolsSecret,
            timeoutMs: config.agentConfigTimeoutMs,
            wallClock,
            // Answered calls are bounded by MAX_CALLS; the floor covers abandoned ones within the TTL.
            maxEntries: Math.max(MIN_AGENT_CONFIG_CACHE_ENTRIES, 2 * config.maxCalls),
          });
  }

  /**
   * The webhook answered a call with a stream carrying `parameters`: ask AGENT_CONFIG_URL now,
   * before the stream starts.
   */
  answered(callSid: string, parameters: Readonly<Record<string, string>>): void {
    this.fetcher?.prefetch({
      callSid,
      from: parameters[FROM_PARAMETER] ?? null,
      to: parameters[TO_PARAMETER] ?? null,
      direction: parameters[DIRECTION_PARAMETER] ?? null,
    });
  }

  /**
   * The agent of a started stream. Never rejects, and settles within AGENT_CONFIG_TIMEOUT_MS of
   * the request (the webhook's, or this one's). Logs one line saying which profile answers and
   * whether the override applied. `log` carries the callSid.
   */
  async resolve(start: { callSid: string; customParameters: Record<string, string> }, log: Logger): Promise<ResolvedAgent> {
    try {
      return await this.resolveOrThrow(start, log);
    } catch (err) {
      // A bug here must cost the call its personalisation, never the call.
      log.error({ err: (err as Error).stack ?? String(err) }, 'resolving the call\'s agent failed: the default profile answers, unpersonalised');
      return { agent: this.config.agent, profile: this.config.profiles.defaultName };
    }
  }

  close(): void {
    this.fetcher?.close();
  }

  private async resolveOrThrow(start: { callSid: string; customParameters: Record<string, string> }, log: Logger): Promise<ResolvedAgent> {
    const startedAtMs = performance.now();
    const context = callContextFrom(start.callSid, start.customParameters, new Date(this.wallClock()).toISOString());
    const selected = selectProfile(this.config, context, start.customParameters[PROFILE_PARAMETER] ?? null);
    if (selected.unknownProfile !== null) {
      log.warn({ requested: selected.unknownProfile, known: [this.config.profiles.defaultName, ...this.config.profiles.byName.keys()] }, 'the call asks for a profile that does not exist: the number decides');
    }
    let agent = selected.agent;
    let override: OverrideOutcome = 'off';
    let detail: string | null = null;
    if (this.fetcher !== null) {
      const answer = await this.fetcher.take(configRequest(context));
      if (answer.outcome !== 'answer') {
        override = answer.outcome;
        detail = answer.detail;
      } else if (answer.body === null) {
        override = 'empty';
      } else {
        const refined = applyOverride(agent, answer.body, this.restCredentials);
        if (refined.ok) {
          agent = refined.agent;
          override = 'applied';
          if (refined.dropped.length > 0) log.warn({ dropped: refined.dropped }, 'AGENT_CONFIG_URL configured transfer_call, which needs TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN: not offered to the model');
        } else {
          override = 'invalid';
          detail = refined.problems.join('; ');
        }
      }
      this.metrics.agentConfigFetch(fetchOutcome(override));
    }
    const personal = personalize(agent, context);
    for (const { key, placeholders } of personal.unfilled) {
      log.warn({ key, placeholders }, 'placeholders left as written: the call brought no value for them');
    }
    this.logAgent(log, { profile: selected.name, selectedBy: selected.by, override, waitedMs: Math.round(performance.now() - startedAtMs) }, detail);
    return { agent: personal.agent, profile: selected.name };
  }

  private logAgent(log: Logger, fields: { profile: string; selectedBy: SelectedBy; override: OverrideOutcome; waitedMs: number }, detail: string | null): void {
    if (detail === null) {
      log.info(fields, 'agent for the call');
      return;
    }
    log.warn({ ...fields, detail: detail.slice(0, 1000) }, `AGENT_CONFIG_URL's answer not used (${fields.override}): the static profile answers`);
  }
}

/** What AGENT_CONFIG_URL is told of a call. */
function configRequest(context: CallContext): AgentConfigRequest {
  return { callSid: context.callSid, from: context.from, to: context.to, direction: context.direction };
}

function fetchOutcome(override: OverrideOutcome): AgentConfigFetchOutcome {
  return override === 'timeout' || override === 'error' || override === 'invalid' ? override : 'ok';
}
