from lite2pg.cli import main

main()
