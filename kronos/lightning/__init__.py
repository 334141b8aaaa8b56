"""Training glue: LightningModules for the two stages, fine-tuning modes, schedules, export and trackers
(the stage runners are in ``kronos.stages``)."""
