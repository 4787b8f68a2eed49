CREATE TABLE `bundle_keys` (
	`id` text PRIMARY KEY NOT NULL,
	`name` text NOT NULL,
	`public_key` text NOT NULL,
	`added_at` integer NOT NULL,
	`added_by` text NOT NULL
);
--> statement-breakpoint
CREATE TABLE `bundles` (
	`name` text PRIMARY KEY NOT NULL,
	`version` text NOT NULL,
	`description` text NOT NULL,
	`params` text NOT NULL,
	`objects` text NOT NULL,
	`images` text NOT NULL,
	`manifest_sha256` text NOT NULL,
	`config_version` integer,
	`signer` text,
	`installed_at` integer NOT NULL,
	`installed_by` text NOT NULL
);
