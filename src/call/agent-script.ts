/**
 * What the bridge tells the model on its own initiative: the greeting, check-ins, goodbyes, the
 * built-in tools and their outputs. Kept in one place so the wording can be reviewed (and
 * changed) without touching the state machines that decide *when* it is said.
 */
import type { AgentConfig, ToolConfig } from '../config.js';
import type { RealtimeFunctionTool } from '../realtime/events.js';
import type { ResponseRequest } from './turn-arbiter.js';

export const END_CALL_TOOL = 'end_call';
/** How a keypad entry reads to the model (and to replay, which finds entries by it). */
export const KEYPAD_ENTRY_PREFIX = 'Keypad entry: ';
export const TRANSFER_CALL_TOOL = 'transfer_call';

/** The marker the local model (and a reader of the logs) recognises a fixed text by. */
export function sayExactly(text: string): string {
  return `Say exactly this, word for word, and nothing else: "${text}"`;
}

export function greetingRequest(greeting: NonNullable<AgentConfig['greeting']>): ResponseRequest {
  return 'text' in greeting
    ? { purpose: 'greeting', instructions: sayExactly(greeting.text) }
    : { purpose: 'greeting', instructions: greeting.instructions };
}

/** An answering machine took the call: the profile's message, word for word, and nothing else. */
export function voicemailRequest(text: string): ResponseRequest {
  return { purpose: 'voicemail', instructions: sayExactly(text) };
}

export function reminderRequest(): ResponseRequest {
  return {
    purpose: 'reminder',
    instructions: 'The caller has been silent for a while. In one short sentence, check whether they are still there. Do not repeat earlier answers.',
  };
}

export function idleGoodbyeRequest(): ResponseRequest {
  return {
    purpose: 'goodbye',
    instructions: 'The caller has not answered your check-ins. Say one short, polite goodbye sentence. The call ends after it.',
  };
}

const NO_PARAMETERS = { type: 'object', properties: {}, additionalProperties: false } as const;

/** The configured tools as the model sees them in `session.update`. */
export function realtimeTools(tools: readonly ToolConfig[]): RealtimeFunctionTool[] {
  return tools.map((tool): RealtimeFunctionTool => {
    switch (tool.type) {
      case 'end_call':
        return {
          type: 'function',
          name: END_CALL_TOOL,
          description:
            tool.description ??
            'Hang up the phone call. Use it when the caller says goodbye, asks to end the call, or the conversation is clearly over. The call ends after the caller has heard your goodbye.',
          parameters: { ...NO_PARAMETERS },
        };
      case 'transfer_call':
        return {
          type: 'function',
          name: TRANSFER_CALL_TOOL,
          description:
            tool.description ??
            'Transfer the caller to a human colleague. Use it when the caller asks for a person or you cannot help. Tell the caller you are transferring them.',
          parameters: {
            type: 'object',
            properties: { reason: { type: 'string', description: 'why the caller is transferred, in a few words' } },
            additionalProperties: false,
          },
        };
      case 'http':
        return { type: 'function', name: tool.name, description: tool.description, parameters: tool.parameters };
    }
  });
}

/** Outputs written back for calls; JSON, so the model reads success and failure the same way. */
export const toolOutputs = {
  ending: (): string =>
    JSON.stringify({ status: 'ending', note: 'The call ends as soon as the caller has heard your goodbye. Say one short goodbye sentence now unless you just did.' }),
  transferring: (to: string): string =>
    JSON.stringify({ status: 'transferring', to, note: 'Tell the caller in one short sentence that you are transferring them now.' }),
  error: (message: string): string => JSON.stringify({ error: message }),
};

/** System notes that keep the model's picture of the call true when the bridge changed course. */
export const notes = {
  controlCalledOff: (kind: 'end' | 'transfer'): string =>
    kind === 'end'
      ? 'The caller spoke before the call ended, so the call goes on. Listen to them.'
      : 'The caller spoke before the transfer started, so the transfer was not made. Listen to them.',
  transferNotStarted: (to: string, detail: string): string =>
    `The transfer to ${to} could not be started (${detail}). The caller is still with you: tell them and offer other help.`,
  transferFailed: (to: string, status: string): string =>
    `The caller was transferred to ${to}, but the transfer failed (${status}). The caller is back with you: tell them briefly and offer other help.`,
  orphanedOutput: (name: string, output: string): string => `Result of the ${name} tool call made before the connection was restored: ${output}`,
  keypadEntry: (digits: string): string => `${KEYPAD_ENTRY_PREFIX}${digits}`,
};
