CREATE TABLE `api_tokens` (
	`id` text PRIMARY KEY NOT NULL,
	`name` text NOT NULL,
	`secret_hash` text NOT NULL,
	`created_at` integer NOT NULL,
	`last_used_at` integer
);
--> statement-breakpoint
CREATE TABLE `config_versions` (
	`version` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`source` text NOT NULL,
	`author` text NOT NULL,
	`hash` text NOT NULL,
	`received_at` integer NOT NULL,
	`bytes` blob NOT NULL,
	`status` text NOT NULL,
	`error` text,
	`note` text,
	`summary` text
);
--> statement-breakpoint
CREATE INDEX `config_versions_hash` ON `config_versions` (`hash`);--> statement-breakpoint
CREATE TABLE `current_config` (
	`id` integer PRIMARY KEY NOT NULL,
	`version` integer NOT NULL,
	`since` integer NOT NULL,
	FOREIGN KEY (`version`) REFERENCES `config_versions`(`version`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE TABLE `events` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`ts` integer NOT NULL,
	`type` text NOT NULL,
	`object_kind` text,
	`object_id` text,
	`message` text NOT NULL,
	`data` text
);
--> statement-breakpoint
CREATE INDEX `events_object` ON `events` (`object_kind`,`object_id`);--> statement-breakpoint
CREATE TABLE `logs` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`ts` integer NOT NULL,
	`source` text NOT NULL,
	`object_id` text,
	`level` text DEFAULT 'info' NOT NULL,
	`message` text NOT NULL
);
--> statement-breakpoint
CREATE INDEX `logs_object` ON `logs` (`source`,`object_id`,`id`);--> statement-breakpoint
CREATE TABLE `metrics` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`ts` integer NOT NULL,
	`object_kind` text NOT NULL,
	`object_id` text NOT NULL,
	`name` text NOT NULL,
	`value` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `metrics_object` ON `metrics` (`object_kind`,`object_id`,`name`,`id`);--> statement-breakpoint
CREATE TABLE `observed_objects` (
	`kind` text NOT NULL,
	`id` text NOT NULL,
	`name` text,
	`state` text NOT NULL,
	`error` text,
	`data` text,
	`updated_at` integer NOT NULL,
	PRIMARY KEY(`kind`, `id`)
);
--> statement-breakpoint
CREATE TABLE `sessions` (
	`id_hash` text PRIMARY KEY NOT NULL,
	`created_at` integer NOT NULL,
	`expires_at` integer NOT NULL,
	`client` text
);
--> statement-breakpoint
CREATE TABLE `settings` (
	`key` text PRIMARY KEY NOT NULL,
	`value` text NOT NULL
);
