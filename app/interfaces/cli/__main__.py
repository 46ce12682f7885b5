from app.interfaces.cli import main

main()
