CREATE TABLE `audit` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`ts` integer NOT NULL,
	`user` text,
	`token` text,
	`client` text NOT NULL,
	`action` text NOT NULL,
	`object` text,
	`result` text NOT NULL,
	`status` integer NOT NULL,
	`detail` text,
	`size` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `audit_ts` ON `audit` (`ts`);--> statement-breakpoint
CREATE TABLE `users` (
	`name` text PRIMARY KEY NOT NULL,
	`role` text NOT NULL,
	`password_hash` text NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	`totp_secret` text,
	`totp_pending` text,
	`totp_last_step` integer,
	`recovery_codes` text
);
--> statement-breakpoint
ALTER TABLE `api_tokens` ADD `user` text;--> statement-breakpoint
ALTER TABLE `api_tokens` ADD `role` text;--> statement-breakpoint
ALTER TABLE `api_tokens` ADD `expires_at` integer;--> statement-breakpoint
ALTER TABLE `sessions` ADD `user` text;
--> statement-breakpoint
-- evebox (hand-added, keep when regenerating): a single-password data directory becomes the user "admin", its password kept.
INSERT INTO `users` (`name`, `role`, `password_hash`, `created_at`, `updated_at`) SELECT 'admin', 'admin', `value`, CAST(strftime('%s','now') AS INTEGER) * 1000, CAST(strftime('%s','now') AS INTEGER) * 1000 FROM `settings` WHERE `key` = 'admin_password_hash';
--> statement-breakpoint
INSERT INTO `settings` (`key`, `value`) SELECT 'setup_admin', 'admin' FROM `settings` WHERE `key` = 'admin_password_hash';
--> statement-breakpoint
DELETE FROM `settings` WHERE `key` = 'admin_password_hash';
--> statement-breakpoint
UPDATE `sessions` SET `user` = 'admin' WHERE `user` IS NULL;
--> statement-breakpoint
UPDATE `api_tokens` SET `user` = 'admin', `role` = 'admin' WHERE `user` IS NULL;
