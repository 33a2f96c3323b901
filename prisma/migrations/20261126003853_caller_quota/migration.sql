-- AlterTable
ALTER TABLE "Caller" ADD COLUMN     "quotaPerMinute" INTEGER;

