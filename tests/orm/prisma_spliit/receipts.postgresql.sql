-- CreateTable
CREATE TABLE "Receipt" (
    "id" BIGINT NOT NULL,
    "payload" JSONB NOT NULL,
    "total" DECIMAL(65,30) NOT NULL,
    "scannedAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "verified" BOOLEAN NOT NULL DEFAULT false,

    CONSTRAINT "Receipt_pkey" PRIMARY KEY ("id")
);
