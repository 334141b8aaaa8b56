"""Training glue: LightningModules for the two stages, schedules, export and stage runners."""
