CREATE TABLE `controller_outbox` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`kind` text NOT NULL,
	`key` text,
	`path` text NOT NULL,
	`body` blob NOT NULL,
	`size` integer NOT NULL,
	`created_at` integer NOT NULL,
	`attempts` integer DEFAULT 0 NOT NULL
);
--> statement-breakpoint
CREATE INDEX `controller_outbox_key` ON `controller_outbox` (`key`);--> statement-breakpoint
CREATE TABLE `controller_state` (
	`key` text PRIMARY KEY NOT NULL,
	`value` text NOT NULL
);
