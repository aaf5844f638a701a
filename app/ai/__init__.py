"""AI writing help: providers (Gemini through google-genai), versioned prompts, generation with a cache,
cost metering and budgets, background jobs for the campaign builder. docs/ai.md says what is sent and what never is."""
