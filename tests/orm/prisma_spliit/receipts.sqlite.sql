-- CreateTable
CREATE TABLE "Receipt" (
    "id" BIGINT NOT NULL PRIMARY KEY,
    "payload" JSONB NOT NULL,
    "total" DECIMAL NOT NULL,
    "scannedAt" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "verified" BOOLEAN NOT NULL DEFAULT false
);
