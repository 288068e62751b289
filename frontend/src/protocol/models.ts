// The start form's model choices against the catalog (`GET /api/models`, docs/protocol.md).

import type { ModelCatalog, ModelChoices, StageModels } from "./types";

/** The model a stage's picker shows: the user's pick if the stage still offers it, else its default. */
export function selectedModel(stage: StageModels, picks: ModelChoices): string {
  const pick = picks[stage.stage];
  return pick && stage.offered.some((m) => m.id === pick) ? pick : stage.default;
}

/**
 * `start.models`: the stages whose pick differs from their default (each one the stage offers),
 * or undefined when there is none, or in demo mode (the server refuses any choice there).
 */
export function chosenModels(catalog: ModelCatalog | null, picks: ModelChoices): ModelChoices | undefined {
  if (!catalog || catalog.demo) return undefined;
  const models: ModelChoices = {};
  let any = false;
  for (const stage of catalog.stages) {
    const id = selectedModel(stage, picks);
    if (id !== stage.default) {
      models[stage.stage] = id;
      any = true;
    }
  }
  return any ? models : undefined;
}
