// The model catalog (`GET /api/models`) the start form offers, loaded once per page and shared by
// the home page and the session page. A failure (a network error, an access token this browser
// does not have yet) leaves the form without pickers: the server then uses each stage's default.

import { create } from "zustand";
import { getModels } from "../net/api";
import type { ModelCatalog } from "../protocol/types";

export type CatalogStatus = "idle" | "loading" | "ready" | "failed";

export interface ModelsStore {
  catalog: ModelCatalog | null;
  status: CatalogStatus;
  /** Loads the catalog unless it is loaded or loading; `force` loads it again (a token was saved). */
  load(force?: boolean): void;
}

export const useModelsStore = create<ModelsStore>()((set, get) => ({
  catalog: null,
  status: "idle",
  load(force = false) {
    const { status } = get();
    if (status === "loading" || (status === "ready" && !force)) return;
    set({ status: "loading" });
    getModels()
      .then((catalog) => set({ catalog, status: "ready" }))
      .catch(() => set({ status: "failed" }));
  },
}));
