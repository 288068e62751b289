// Plain-language words for the protocol's error codes: a short title and what the user can do or
// what happens next. The server's own `message` is already plain words and is shown as the body;
// these fill in the rest.

import {
  RETRYABLE_FAILURE_CODES,
  type FailureCode,
  type RejectionCode,
  type WarningCode,
} from "./types";

export interface CodeWords {
  title: string;
  next: string;
}

// Complete over the generated code sets: a code added in Rust fails the typecheck until it has words.
const PROVIDER: Readonly<Record<FailureCode, CodeWords>> = {
  bad_key: {
    title: "The AI provider refused the API key",
    next: "Check the OPENAI_API_KEY configured for this BotArmy, then press Retry.",
  },
  quota_exhausted: {
    title: "The AI provider account is out of quota",
    next: "Add credit or raise the quota with the provider, then press Retry.",
  },
  rate_limited: {
    title: "The AI provider asked us to slow down",
    next: "BotArmy waits as long as the provider asks, then tries again by itself.",
  },
  timeout: {
    title: "The AI provider took too long to answer",
    next: "BotArmy tries again by itself after a short wait.",
  },
  network: {
    title: "Could not reach the AI provider",
    next: "BotArmy tries again by itself after a short wait.",
  },
  server_error: {
    title: "The AI provider had an internal error",
    next: "BotArmy tries again by itself after a short wait.",
  },
  content_filtered: {
    title: "The AI provider's content filter blocked the answer",
    next: "Rephrase the brief or your feedback, then start again.",
  },
  malformed_stream: {
    title: "The AI provider's answer was garbled",
    next: "BotArmy tries again by itself after a short wait.",
  },
  context_too_long: {
    title: "The request was too long for the model",
    next: "Shorten the brief or the feedback, or use a model with a larger context, then retry.",
  },
  budget_exhausted: {
    // The token budget or the dollar budget (SESSION_BUDGET_USD); the message says which.
    title: "This session has used its budget",
    next: "Start a new session to continue.",
  },
  retries_exhausted: {
    title: "The stage failed several times in a row",
    next: "Press Retry to try this stage again once the provider is healthy.",
  },
  bad_request: {
    title: "The AI provider rejected the request",
    next: "Check the model name and provider settings, then press Retry.",
  },
  model_not_found: {
    title: "The AI provider does not know the configured model",
    next: "Check the model name (OPENAI_MODEL) and that this key may use it, then press Retry.",
  },
  answer_too_long: {
    title: "The AI's answer was longer than BotArmy keeps for one stage",
    next: "Ask for a shorter answer in your feedback, or press Retry.",
  },
  too_many_tool_rounds: {
    title: "The AI kept calling tools instead of finishing",
    next: "Press Retry, or rerun the stage with feedback asking for fewer, larger file writes.",
  },
  reasoning_too_long: {
    title: "The AI thought for longer than BotArmy allows for one stage",
    next: "Press Retry, or choose a model or setting that thinks less for this agent.",
  },
  stage_too_long: {
    title: "The AI kept going for longer than one stage may run",
    next: "Press Retry, or ask for a shorter answer in your feedback.",
  },
};

const REJECTION: Readonly<Record<RejectionCode | WarningCode, CodeWords>> = {
  invalid_json: { title: "The server could not read a message", next: "Nothing was changed." },
  binary_frame: { title: "The server could not read a message", next: "Nothing was changed." },
  not_an_object: { title: "The server could not read a message", next: "Nothing was changed." },
  unknown_type: { title: "The server did not recognise a command", next: "Nothing was changed. Reload the page to get the latest app." },
  missing_field: { title: "A command was missing information", next: "Nothing was changed." },
  invalid_field: { title: "A command had an invalid value", next: "Nothing was changed." },
  brief_empty: { title: "The brief is empty", next: "Write what you want built, then press Start." },
  brief_too_long: { title: "The brief is too long", next: "Shorten it to 8000 characters or fewer, then press Start." },
  feedback_empty: { title: "The feedback is empty", next: "Say what should change, then send it again." },
  feedback_too_long: { title: "The feedback is too long", next: "Shorten it to 4000 characters or fewer, then send it again." },
  unknown_stage: { title: "Unknown stage", next: "Nothing was changed." },
  invalid_state: { title: "That action does not fit right now", next: "Nothing was changed; the buttons show what you can do now." },
  hello_required: { title: "The connection was not ready", next: "Reconnecting will fix it; try again in a moment." },
  frame_too_large: { title: "A message to the server was too large", next: "Nothing was changed." },
  resync_rate_limited: { title: "The connection re-synced too often", next: "Wait a few seconds; the page catches up by itself." },
  id_reused: { title: "A command id was reused for a different command", next: "Nothing was changed. Reload the page if this keeps happening." },
  budget_exhausted: PROVIDER.budget_exhausted,
  rate_limited: { title: "Too many actions too quickly", next: "Slow down; the connection will be closed if this goes on." },
  read_only: {
    title: "This is a view-only link",
    next: "Nothing was changed. You can watch the run and read its artifacts; only the session's owner can start, approve or stop it.",
  },
};

/** Words for a provider failure code (agent_error / RUN_ERROR). */
export function providerWords(code: string | undefined): CodeWords {
  return (
    (code && Object.prototype.hasOwnProperty.call(PROVIDER, code) ? PROVIDER[code as FailureCode] : undefined) ?? {
      title: "The run stopped on an error",
      next: "Press Retry to run the stage again, or start a new run.",
    }
  );
}

/** Words for a command rejection or a connection warning code. */
export function rejectionWords(code: string | undefined): CodeWords {
  return (
    (code && Object.prototype.hasOwnProperty.call(REJECTION, code) ? REJECTION[code as RejectionCode | WarningCode] : undefined) ?? {
      title: "The server refused that action",
      next: "Nothing was changed.",
    }
  );
}

export const RETRYABLE_CODES: ReadonlySet<string> = new Set<string>(RETRYABLE_FAILURE_CODES);
