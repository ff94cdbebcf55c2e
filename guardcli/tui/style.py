"""The console's stylesheet (Textual CSS)."""

CSS = """
    #tabs { height: 1fr; }
    #tabs ContentSwitcher { height: 1fr; }
    #tabs TabPane { height: 1fr; padding: 0; }
    #console-body { height: 1fr; }
    #history { width: 30%; max-width: 40; min-width: 20; height: 1fr; border: round $panel; }
    #history:focus-within { border: round $accent; }
    #main { width: 1fr; }
    #prompt { height: 6; }
    #response { height: 5; }
    TextArea { border: round $panel; }
    TextArea:focus { border: round $accent; }
    VerdictBadges { height: 1; padding: 0 1; }
    .badge { width: auto; padding: 0 1; margin-right: 1; text-style: bold; }
    .badge.pending { background: $panel; color: $text-muted; text-style: none; }
    .badge.harmful { background: #c62828; color: #ffffff; }
    .badge.unharmful { background: #2e7d32; color: #ffffff; }
    .badge.refusal { background: #1565c0; color: #ffffff; }
    .badge.compliance { background: #f9a825; color: #000000; }
    .badge.none { background: #546e7a; color: #ffffff; }
    .badge.unknown { background: #ef6c00; color: #000000; }
    ReasoningView { height: 1fr; border: round $panel; }
    ReasoningView:focus { border: round $accent; }
    #reasoning-empty { color: $text-muted; padding: 0 1; }
    .section { height: auto; border: round $primary; padding: 0 1; }
    .section.answers { border: round $accent; }
    BatchPane { height: 1fr; }
    #batch-info { height: 1; padding: 0 1; }
    #batch-progress { padding: 0 1; }
    #batch-table { height: 1fr; }
    StatusBar { height: 1; background: $panel; padding: 0 1; }
    #status-model { width: auto; }
    #status-state { width: 1fr; text-align: right; }
    """
