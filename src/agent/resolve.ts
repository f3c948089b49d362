/**
 * Which agent answers a call, decided from what the call says and the static configuration, then
 * refined by AGENT_CONFIG_URL's answer and personalised with the caller context. Pure: the shell
 * (src/agent/call-agents.ts) fetches, logs and counts.
 */
import { ConfigError, offerableTools, refineAgentConfig, templatedTexts } from '../config.js';
import type { AgentConfig, AgentProfiles, GreetingConfig } from '../config.js';
import { isJsonObject } from '../util/json.js';
import { fillTemplate, templateValues } from './template.js';
import type { CallContext } from './template.js';

/** How a profile was chosen, for the log. */
export type SelectedBy = 'profile-parameter' | 'number' | 'default';

export interface SelectedProfile {
  name: string;
  agent: AgentConfig;
  by: SelectedBy;
  /** a `profile` the stream asked for that does not exist (the number decided instead) */
  unknownProfile: string | null;
}

/**
 * The service's own number on the call: the one dialled on an inbound call, the one calling out
 * on an outbound call (Twilio's Direction `outbound-api`, `outbound-dial`).
 */
export function ownNumber(context: Pick<CallContext, 'from' | 'to' | 'direction'>): string | null {
  return context.direction?.startsWith('outbound') === true ? context.from : context.to;
}

/**
 * A `profile` the call names (an outbound call's choice) wins; else the profile `numbers` maps
 * the service's own number to; else the default profile.
 */
export function selectProfile(
  defaults: { agent: AgentConfig; profiles: AgentProfiles },
  context: Pick<CallContext, 'from' | 'to' | 'direction'>,
  requested: string | null,
): SelectedProfile {
  const { profiles } = defaults;
  const byName = (name: string): AgentConfig | null => (name === profiles.defaultName ? defaults.agent : (profiles.byName.get(name)?.agent ?? null));
  let unknownProfile: string | null = null;
  if (requested !== null) {
    const agent = byName(requested);
    if (agent !== null) return { name: requested, agent, by: 'profile-parameter', unknownProfile };
    unknownProfile = requested;
  }
  const number = ownNumber(context);
  const mapped = number === null ? undefined : profiles.numbers.get(number);
  const agent = mapped === undefined ? null : byName(mapped);
  if (mapped !== undefined && agent !== null) return { name: mapped, agent, by: 'number', unknownProfile };
  return { name: profiles.defaultName, agent: defaults.agent, by: 'default', unknownProfile };
}

export type Refined =
  | { ok: true; agent: AgentConfig; dropped: string[] }
  | { ok: false; problems: string[] };

/**
 * AGENT_CONFIG_URL's answer over the call's profile: the same merge and the same validation as a
 * profile file, all or nothing. A problem anywhere rejects the whole answer, so a call never runs
 * half of what the endpoint meant.
 */
export function applyOverride(profile: AgentConfig, answer: unknown, restCredentials: boolean): Refined {
  if (!isJsonObject(answer)) return { ok: false, problems: [`the answer must be a JSON object of config keys, got ${describe(answer)}`] };
  try {
    const { agent, dropped } = offerableTools(refineAgentConfig(profile, answer), restCredentials);
    return { ok: true, agent, dropped };
  } catch (err) {
    if (err instanceof ConfigError) return { ok: false, problems: err.problems };
    throw err;
  }
}

function describe(v: unknown): string {
  if (Array.isArray(v)) return 'an array';
  return v === null ? 'null' : typeof v;
}

export interface Personalized {
  agent: AgentConfig;
  /** placeholders left as written, by key: unknown names, or context the call did not bring */
  unfilled: Array<{ key: string; placeholders: string[] }>;
}

/** The agent's instructions, greeting and voicemail with the call's context filled in (src/agent/template.ts). */
export function personalize(agent: AgentConfig, context: CallContext): Personalized {
  const values = templateValues(context);
  const unfilled: Personalized['unfilled'] = [];
  const filled = new Map<string, string>();
  for (const [key, text] of templatedTexts(agent)) {
    const result = fillTemplate(text, values);
    filled.set(key, result.text);
    if (result.unfilled.length > 0) unfilled.push({ key, placeholders: result.unfilled });
  }
  const greeting: GreetingConfig =
    agent.greeting === null
      ? null
      : 'text' in agent.greeting
        ? { text: filled.get('greeting.text') ?? agent.greeting.text }
        : { instructions: filled.get('greeting.instructions') ?? agent.greeting.instructions };
  const voicemail = agent.voicemail === null ? null : (filled.get('voicemail') ?? agent.voicemail);
  return { agent: { ...agent, instructions: filled.get('instructions') ?? agent.instructions, greeting, voicemail }, unfilled };
}
