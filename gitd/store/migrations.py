"""Schema migrations, applied in order and recorded in ``schema_migrations``.

Append new migrations at the end; never edit one that has shipped.
"""

from __future__ import annotations

MIGRATIONS: list[tuple[int, str, str]] = [
    (
        1,
        "accounts, repositories, tokens, ssh keys, jobs",
        """
        CREATE TABLE accounts (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT NOT NULL COLLATE NOCASE UNIQUE,
            kind TEXT NOT NULL CHECK (kind IN ('user', 'org')),
            email TEXT,
            is_admin INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL
        );
        CREATE TABLE org_members (
            org_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
            user_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
            role TEXT NOT NULL CHECK (role IN ('read', 'write', 'admin')),
            PRIMARY KEY (org_id, user_id)
        );
        CREATE TABLE tokens (
            id INTEGER PRIMARY KEY,
            account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            token_hash TEXT NOT NULL UNIQUE,
            scope TEXT NOT NULL CHECK (scope IN ('read', 'write')),
            created_at TEXT NOT NULL,
            last_used_at TEXT,
            UNIQUE (account_id, name)
        );
        CREATE TABLE repos (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            owner_id INTEGER NOT NULL REFERENCES accounts(id),
            name TEXT NOT NULL COLLATE NOCASE,
            type TEXT NOT NULL CHECK (type IN ('model', 'dataset', 'code', 'space')),
            private INTEGER NOT NULL DEFAULT 0,
            default_branch TEXT NOT NULL DEFAULT 'main',
            description TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            UNIQUE (owner_id, type, name)
        );
        CREATE TABLE ssh_keys (
            id INTEGER PRIMARY KEY,
            account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
            fingerprint TEXT NOT NULL UNIQUE,
            public_key TEXT NOT NULL,
            title TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL
        );
        CREATE TABLE jobs (
            id INTEGER PRIMARY KEY,
            hook TEXT NOT NULL,
            plugin TEXT NOT NULL,
            repo_id INTEGER,
            payload TEXT NOT NULL,
            dedup_key TEXT NOT NULL UNIQUE,
            state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed')),
            attempts INTEGER NOT NULL DEFAULT 0,
            max_attempts INTEGER NOT NULL,
            run_after REAL NOT NULL,
            last_error TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX jobs_ready ON jobs (state, run_after);
        """,
    ),
    (
        2,
        "git lfs: stored objects, the objects each repository holds, locks",
        """
        CREATE TABLE lfs_objects (
            oid TEXT PRIMARY KEY,
            size INTEGER NOT NULL CHECK (size >= 0),
            state TEXT NOT NULL DEFAULT 'stored' CHECK (state IN ('stored', 'lost', 'deleting')),
            created_at TEXT NOT NULL,
            touched_at TEXT NOT NULL
        );
        CREATE TABLE lfs_repo_objects (
            repo_id INTEGER NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
            oid TEXT NOT NULL REFERENCES lfs_objects(oid),
            created_at TEXT NOT NULL,
            PRIMARY KEY (repo_id, oid)
        ) WITHOUT ROWID;
        CREATE INDEX lfs_repo_objects_by_oid ON lfs_repo_objects (oid);
        CREATE TABLE lfs_locks (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            repo_id INTEGER NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
            path TEXT NOT NULL,
            owner_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
            ref TEXT,
            locked_at TEXT NOT NULL
        );
        CREATE UNIQUE INDEX lfs_locks_repo_path ON lfs_locks (repo_id, path);
        """,
    ),
    (
        4,
        "hub discussions, pull requests, and redirects of moved repositories",
        """
        CREATE TABLE discussions (
            id INTEGER PRIMARY KEY,
            repo_id INTEGER NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
            num INTEGER NOT NULL,
            title TEXT NOT NULL,
            description TEXT NOT NULL DEFAULT '',
            author_id INTEGER REFERENCES accounts(id) ON DELETE SET NULL,
            is_pull_request INTEGER NOT NULL DEFAULT 0,
            status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed', 'merged', 'draft')),
            created_at TEXT NOT NULL,
            UNIQUE (repo_id, num)
        );
        CREATE TABLE repo_redirects (
            type TEXT NOT NULL,
            namespace TEXT NOT NULL COLLATE NOCASE,
            name TEXT NOT NULL COLLATE NOCASE,
            repo_id INTEGER NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
            created_at TEXT NOT NULL,
            PRIMARY KEY (type, namespace, name)
        );
        """,
    ),
    (
        5,
        "indexes for repository listings: ORDER BY lastModified/createdAt ... LIMIT walks an index",
        """
        CREATE INDEX repos_by_type_updated ON repos (type, updated_at);
        CREATE INDEX repos_by_type_created ON repos (type, created_at);
        """,
    ),
    (
        6,
        "the web UI: password hashes, browser sessions, comments on discussions",
        """
        CREATE TABLE passwords (
            account_id INTEGER PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
            hash TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE TABLE web_sessions (
            id_hash TEXT PRIMARY KEY,
            account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
            csrf TEXT NOT NULL,
            created_at REAL NOT NULL,
            expires_at REAL NOT NULL
        );
        CREATE INDEX web_sessions_by_account ON web_sessions (account_id);
        CREATE TABLE discussion_comments (
            id INTEGER PRIMARY KEY,
            discussion_id INTEGER NOT NULL REFERENCES discussions(id) ON DELETE CASCADE,
            author_id INTEGER REFERENCES accounts(id) ON DELETE SET NULL,
            body TEXT NOT NULL,
            created_at TEXT NOT NULL
        );
        CREATE INDEX discussion_comments_by_discussion ON discussion_comments (discussion_id, id);
        """,
    ),
    (
        7,
        "what a running job reports of its progress (PluginContext.progress)",
        """
        ALTER TABLE jobs ADD COLUMN progress TEXT;
        """,
    ),
    (
        8,
        "hub discussions whole: comment edits and hiding, status and title events, merge commits",
        """
        ALTER TABLE discussions ADD COLUMN merge_commit TEXT;
        ALTER TABLE discussions ADD COLUMN edited_at TEXT;
        ALTER TABLE discussions ADD COLUMN hidden INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE discussion_comments ADD COLUMN edited_at TEXT;
        ALTER TABLE discussion_comments ADD COLUMN hidden INTEGER NOT NULL DEFAULT 0;
        CREATE TABLE discussion_events (
            id INTEGER PRIMARY KEY,
            discussion_id INTEGER NOT NULL REFERENCES discussions(id) ON DELETE CASCADE,
            kind TEXT NOT NULL CHECK (kind IN ('status-change', 'title-change')),
            author_id INTEGER REFERENCES accounts(id) ON DELETE SET NULL,
            data TEXT NOT NULL,
            created_at TEXT NOT NULL
        );
        CREATE INDEX discussion_events_by_discussion ON discussion_events (discussion_id, id);
        """,
    ),
    (
        9,
        "gated repositories: a repository's gate and the access requests of its users",
        """
        CREATE TABLE repo_gates (
            repo_id INTEGER PRIMARY KEY REFERENCES repos(id) ON DELETE CASCADE,
            mode TEXT NOT NULL CHECK (mode IN ('auto', 'manual')),
            updated_at TEXT NOT NULL
        );
        CREATE TABLE access_requests (
            id INTEGER PRIMARY KEY,
            repo_id INTEGER NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
            account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
            status TEXT NOT NULL CHECK (status IN ('pending', 'accepted', 'rejected')),
            fields TEXT,
            rejection_reason TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            UNIQUE (repo_id, account_id)
        );
        CREATE INDEX access_requests_by_status ON access_requests (repo_id, status, id);
        """,
    ),
    (
        10,
        "hub webhooks (what each watches) and collections (their items)",
        """
        CREATE TABLE webhooks (
            id INTEGER PRIMARY KEY,
            owner_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
            url TEXT NOT NULL,
            secret TEXT,
            domains TEXT NOT NULL,
            disabled INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE TABLE webhook_watched (
            webhook_id INTEGER NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
            kind TEXT NOT NULL CHECK (kind IN ('user', 'org', 'model', 'dataset', 'space', 'code')),
            name TEXT NOT NULL COLLATE NOCASE,
            PRIMARY KEY (webhook_id, kind, name)
        );
        CREATE INDEX webhook_watched_by_name ON webhook_watched (kind, name);
        CREATE TABLE collections (
            id INTEGER PRIMARY KEY,
            owner_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
            slug TEXT NOT NULL UNIQUE,
            title TEXT NOT NULL,
            description TEXT NOT NULL DEFAULT '',
            private INTEGER NOT NULL DEFAULT 0,
            theme TEXT NOT NULL DEFAULT 'default',
            position INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX collections_by_owner ON collections (owner_id, position);
        CREATE TABLE collection_items (
            id INTEGER PRIMARY KEY,
            collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
            repo_id INTEGER NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
            note TEXT,
            position INTEGER NOT NULL,
            created_at TEXT NOT NULL,
            UNIQUE (collection_id, repo_id)
        );
        CREATE INDEX collection_items_by_repo ON collection_items (repo_id);
        """,
    ),
    (
        11,
        "likes of repositories",
        """
        CREATE TABLE repo_likes (
            repo_id INTEGER NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
            account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
            created_at TEXT NOT NULL,
            PRIMARY KEY (repo_id, account_id)
        ) WITHOUT ROWID;
        CREATE INDEX repo_likes_by_account ON repo_likes (account_id, created_at);
        """,
    ),
    (
        12,
        "each repository's like count, kept by triggers, so listings sort by likes through an index",
        """
        ALTER TABLE repos ADD COLUMN likes INTEGER NOT NULL DEFAULT 0;
        UPDATE repos SET likes = (SELECT COUNT(*) FROM repo_likes l WHERE l.repo_id = repos.id);
        CREATE INDEX repos_by_type_likes ON repos (type, likes);
        CREATE TRIGGER repo_likes_added AFTER INSERT ON repo_likes
        BEGIN UPDATE repos SET likes = likes + 1 WHERE id = NEW.repo_id; END;
        CREATE TRIGGER repo_likes_removed AFTER DELETE ON repo_likes
        BEGIN UPDATE repos SET likes = likes - 1 WHERE id = OLD.repo_id; END;
        """,
    ),
    (
        13,
        "one order for a discussion's comments and changes: a sequence per discussion, kept by triggers",
        """
        ALTER TABLE discussions ADD COLUMN timeline_seq INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE discussion_comments ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE discussion_events ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
        CREATE TEMP TABLE timeline_order AS
            SELECT kind, id, ROW_NUMBER() OVER (PARTITION BY discussion_id ORDER BY created_at, kind, id) AS n
            FROM (SELECT 'c' AS kind, id, discussion_id, created_at FROM discussion_comments
                  UNION ALL SELECT 'e', id, discussion_id, created_at FROM discussion_events);
        UPDATE discussion_comments
            SET seq = (SELECT n FROM timeline_order o WHERE o.kind = 'c' AND o.id = discussion_comments.id);
        UPDATE discussion_events
            SET seq = (SELECT n FROM timeline_order o WHERE o.kind = 'e' AND o.id = discussion_events.id);
        DROP TABLE timeline_order;
        UPDATE discussions SET timeline_seq = max(
            (SELECT COALESCE(MAX(seq), 0) FROM discussion_comments c WHERE c.discussion_id = discussions.id),
            (SELECT COALESCE(MAX(seq), 0) FROM discussion_events e WHERE e.discussion_id = discussions.id));
        CREATE TRIGGER discussion_comment_sequenced AFTER INSERT ON discussion_comments
        BEGIN
            UPDATE discussions SET timeline_seq = timeline_seq + 1 WHERE id = NEW.discussion_id;
            UPDATE discussion_comments SET seq = (SELECT timeline_seq FROM discussions WHERE id = NEW.discussion_id)
            WHERE id = NEW.id;
        END;
        CREATE TRIGGER discussion_event_sequenced AFTER INSERT ON discussion_events
        BEGIN
            UPDATE discussions SET timeline_seq = timeline_seq + 1 WHERE id = NEW.discussion_id;
            UPDATE discussion_events SET seq = (SELECT timeline_seq FROM discussions WHERE id = NEW.discussion_id)
            WHERE id = NEW.id;
        END;
        """,
    ),
]
