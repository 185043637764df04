-- AlterTable
ALTER TABLE "Group" ADD COLUMN     "currencyCode" TEXT;
